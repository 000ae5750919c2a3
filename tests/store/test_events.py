"""Material events in the store: idempotent by key and version, corrections supersede,
conflicting resends are dead letters, never overwrites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.contracts import DeadLetter, EventKind, MaterialEvent, Reading
from collector.store import StoreSettings, StoreWriter
from tests.store.test_writer import rows

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
BRIDGE = "yulin-1/slag-yard/weighbridge-2"


def ingot(quantity: float, version: int = 1, key: str = "cast-17") -> MaterialEvent:
    return MaterialEvent(key=key, kind=EventKind.INGOT_CAST, time=T0, asset=BRIDGE,
                         quantity=quantity, unit="t", version=version, origin="mqtt:test")


async def events(url: str) -> list[tuple[object, ...]]:
    return await rows(url, "select event_key, version, quantity, superseded from events "
                           "order by event_key, version")


async def test_a_resent_event_is_stored_once(store_settings: StoreSettings) -> None:
    async with StoreWriter(store_settings) as writer:
        first = await writer.write([], [ingot(1.93)])
        again = await writer.write([], [ingot(1.93)])
    assert (first.events_inserted, again.events_inserted, again.events_duplicates) == (1, 0, 1)
    assert await events(store_settings.database_url) == [("cast-17", 1, 1.93, False)]


async def test_same_version_with_other_content_is_a_dead_letter_not_an_overwrite(
        store_settings: StoreSettings) -> None:
    async with StoreWriter(store_settings) as writer:
        await writer.write([], [ingot(1.93)])
        result = await writer.write([], [ingot(2.10)])
    assert result.dead_lettered == 1
    assert await events(store_settings.database_url) == [("cast-17", 1, 1.93, False)]
    [(reason,)] = await rows(store_settings.database_url, "select reason from dead_letters")
    assert reason == ("event 'cast-17' version 1 is already stored with another quantity; "
                      "a correction needs a higher version")


async def test_a_correction_supersedes_and_a_late_old_version_stays_superseded(
        store_settings: StoreSettings) -> None:
    async with StoreWriter(store_settings) as writer:
        await writer.write([], [ingot(1.93, version=2)])   # the correction overtook the first
        await writer.write([], [ingot(1.90, version=1)])   # the first arrives late
        await writer.write([], [ingot(1.95, version=3)])   # another correction
    assert await events(store_settings.database_url) == [
        ("cast-17", 1, 1.90, True), ("cast-17", 2, 1.93, True), ("cast-17", 3, 1.95, False)]
    assert await rows(store_settings.database_url,
                      "select current_version from event_keys") == [(3,)]


async def test_readings_events_and_dead_letters_commit_together(
        store_settings: StoreSettings) -> None:
    reading = Reading("yulin-1/reduction/furnace-01/zone-1", "zone_temp_c", 1221.5,
                      T0 + timedelta(minutes=1), origin="mqtt:test")
    letter = DeadLetter("mqtt:smelter/v1/yulin-1/junk", "payload is not JSON", b"\xff\x00",
                        {"topic": "smelter/v1/yulin-1/junk"})
    async with StoreWriter(store_settings) as writer:
        result = await writer.write([reading], [ingot(1.93, key="cast-18")], [letter])
    assert (result.inserted, result.events_inserted, result.dead_lettered) == (1, 1, 1)
    url = store_settings.database_url
    assert await rows(url, "select origin, reason, payload, detail from dead_letters") == [
        ("mqtt:smelter/v1/yulin-1/junk", "payload is not JSON", b"\xff\x00",
         {"topic": "smelter/v1/yulin-1/junk"})]
    assert await rows(url, "select count(*) from samples") == [(1,)]
