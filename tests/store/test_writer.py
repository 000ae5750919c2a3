"""The store writer against the real TimescaleDB: idempotent, conflicts kept aside, unknown
tags and garbage dead-lettered with a reason, quality and status codes kept."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector.contracts import STATUS_BAD, Quality, Reading
from collector.store import StoreSettings, StoreUnavailable, StoreWriter

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
RETORT = "yulin-1/reduction/furnace-03/retort-07"
FURNACE = "yulin-1/reduction/furnace-03"


def vacuum(i: int, value: float, quality: Quality = Quality.GOOD, status: int = 0) -> Reading:
    return Reading(RETORT, "vacuum_pa", value, T0 + timedelta(seconds=i), quality, status,
                   origin="test")


async def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql)).fetchall()  # type: ignore[arg-type]


async def test_same_batch_twice_leaves_the_same_rows(store_settings: StoreSettings) -> None:
    batch = [vacuum(i, 10.0 + i) for i in range(100)]
    async with StoreWriter(store_settings) as writer:
        first = await writer.put(batch)
        stored = await rows(store_settings.database_url,
                            "select time, tag_id, value, quality from samples order by time")
        second = await writer.put(batch)
    assert (first.inserted, first.duplicates, first.conflicts) == (100, 0, 0)
    assert (second.inserted, second.duplicates, second.conflicts) == (0, 100, 0)
    assert await rows(store_settings.database_url,
                      "select time, tag_id, value, quality from samples order by time") == stored
    assert await rows(store_settings.database_url, "select count(*) from sample_conflicts") \
        == [(0,)]


async def test_different_value_at_a_stored_instant_is_a_conflict_not_an_overwrite(
        store_settings: StoreSettings) -> None:
    async with StoreWriter(store_settings) as writer:
        await writer.put([vacuum(0, 12.0), vacuum(1, 12.5)])
        result = await writer.put([vacuum(0, 99.0), vacuum(1, 12.5), vacuum(2, 13.0)])
    assert (result.inserted, result.duplicates, result.conflicts) == (1, 1, 1)
    url = store_settings.database_url
    assert await rows(url, "select value from samples order by time") == [(12.0,), (12.5,),
                                                                          (13.0,)]
    assert await rows(url, "select stored_value, offered_value, origin from sample_conflicts") \
        == [(12.0, 99.0, "test")]


async def test_conflict_inside_one_batch_keeps_the_first_and_records_the_other(
        store_settings: StoreSettings) -> None:
    async with StoreWriter(store_settings) as writer:
        result = await writer.put([vacuum(0, 12.0), vacuum(0, 12.0), vacuum(0, 15.0)])
    assert (result.inserted, result.duplicates, result.conflicts) == (1, 1, 1)
    url = store_settings.database_url
    assert await rows(url, "select value from samples") == [(12.0,)]
    assert await rows(url, "select stored_value, offered_value from sample_conflicts") \
        == [(12.0, 15.0)]


async def test_unknown_signal_is_dead_lettered_and_known_tags_registered(
        store_settings: StoreSettings) -> None:
    batch = [vacuum(0, 11.0),
             Reading(FURNACE, "flue_exhaust_temp_c", 150.0, T0, origin="test"),
             Reading(FURNACE, "flux_temp_c", 650.0, T0, origin="opcua:plc-furnace-03")]
    async with StoreWriter(store_settings) as writer:
        result = await writer.put(batch)
    assert (result.inserted, result.dead_lettered) == (2, 1)
    url = store_settings.database_url
    assert await rows(url, "select asset, signal, unit, kind from tags order by tag_id") == [
        (RETORT, "vacuum_pa", "Pa", "gauge"), (FURNACE, "flue_exhaust_temp_c", "°C", "gauge")]
    [(origin, reason, detail)] = await rows(url, "select origin, reason, detail from dead_letters")
    assert origin == "opcua:plc-furnace-03"
    assert reason == "unknown signal 'flux_temp_c': not in the signal catalogue"
    assert detail == {"asset": FURNACE, "signal": "flux_temp_c", "value": 650.0,
                      "time": T0.isoformat(), "quality": "good", "status_code": 0}


async def test_quality_and_status_code_are_kept(store_settings: StoreSettings) -> None:
    bad_not_connected = 0x808A_0000  # BadNotConnected
    uncertain_last_usable = 0x4090_0000  # UncertainLastUsableValue
    batch = [vacuum(0, 12.0),
             vacuum(1, 12.1, Quality.UNCERTAIN, uncertain_last_usable),
             vacuum(2, math.nan, Quality.BAD, bad_not_connected),
             Reading(RETORT, "vacuum_pa", None, T0 + timedelta(seconds=3), Quality.BAD,
                     STATUS_BAD, origin="test")]
    async with StoreWriter(store_settings) as writer:
        result = await writer.put(batch)
    assert result.inserted == 4 and result.dead_lettered == 0
    assert await rows(store_settings.database_url,
                      "select value, quality, status_code from samples order by time") == [
        (12.0, 0, 0), (12.1, 1, uncertain_last_usable), (None, 2, bad_not_connected),
        (None, 2, STATUS_BAD)]
    assert Quality.from_status_code(bad_not_connected) is Quality.BAD
    assert Quality.from_status_code(uncertain_last_usable) is Quality.UNCERTAIN


@pytest.mark.parametrize(("reading", "reason"), [
    (vacuum(0, math.nan), "value is NaN with Good status"),
    (vacuum(0, math.inf), "value is infinite"),
    (vacuum(0, -5.0), "value outside the signal's physical range [0, 120000]"),
    (vacuum(0, 1e9, Quality.BAD, STATUS_BAD), "value outside the signal's physical range"),
    (Reading(RETORT, "vacuum_pa", None, T0), "Good status without a value"),
    (Reading(RETORT, "vacuum_pa", 12.0, T0.replace(tzinfo=None)),
     "naive source timestamp (no time zone)"),
    (Reading("/yulin-1//retort", "vacuum_pa", 12.0, T0), "malformed asset path"),
])
async def test_garbage_is_dead_lettered_with_its_reason(
        store_settings: StoreSettings, reading: Reading, reason: str) -> None:
    async with StoreWriter(store_settings) as writer:
        result = await writer.put([reading, vacuum(5, 12.0)])
    assert (result.inserted, result.dead_lettered) == (1, 1)
    [(stored_reason,)] = await rows(store_settings.database_url,
                                    "select reason from dead_letters")
    assert str(stored_reason).startswith(reason)


async def test_writer_marks_touched_hours_for_the_rollups(store_settings: StoreSettings) -> None:
    async with StoreWriter(store_settings) as writer:
        await writer.put([vacuum(0, 12.0), vacuum(3 * 3600, 12.0)])
    assert await rows(store_settings.database_url, "select hour from rollup_dirty order by 1") \
        == [(T0,), (T0 + timedelta(hours=3),)]


async def test_unreachable_database_raises_a_clear_error() -> None:
    settings = StoreSettings(database_url="postgresql://postgres@127.0.0.1:1/smeltwatch",
                             connect_timeout_s=1)
    writer = StoreWriter(settings)
    with pytest.raises(StoreUnavailable, match=r"cannot reach TimescaleDB at 127\.0\.0\.1:1/"):
        await writer.open()
    await writer.close()


async def test_database_gone_after_open_raises_store_unavailable(migrated_url: str) -> None:
    # A writer whose connections are killed by the server reports StoreUnavailable, and the
    # batch it was writing is not half-stored.
    settings = StoreSettings(database_url=migrated_url, pool_max_size=1, connect_timeout_s=1)
    async with StoreWriter(settings) as writer:
        await writer.put([vacuum(0, 12.0)])
        async with await psycopg.AsyncConnection.connect(migrated_url, autocommit=True) as admin:
            await admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = current_database() and pid <> pg_backend_pid()")
        with pytest.raises(StoreUnavailable):
            await writer.put([vacuum(1, 12.0)])
        # the pool replaces the dead connection; the next batch goes through
        result = await writer.put([vacuum(1, 12.0)])
    assert result.inserted == 1


async def test_packed_binary_copy_round_trips_every_null_combination(
        store_settings: StoreSettings) -> None:
    """The writer packs COPY rows itself (collector/store/binary_copy.py): every field comes
    back as written — values, NULLs, full 32-bit status codes, server times, µs."""
    server = T0 + timedelta(seconds=5, microseconds=123)
    readings = [
        Reading(RETORT, "vacuum_pa", 8.25, T0 + timedelta(microseconds=1), server_time=server),
        Reading(RETORT, "vacuum_pa", None, T0 + timedelta(seconds=1), Quality.BAD, 0xFFFF_FFFF,
                server_time=server),
        Reading(RETORT, "vacuum_pa", 9.5, T0 + timedelta(seconds=2), Quality.UNCERTAIN,
                0x4093_0000),
        Reading(RETORT, "vacuum_pa", None, T0 + timedelta(seconds=3), Quality.BAD, STATUS_BAD),
    ]
    async with StoreWriter(store_settings) as writer:
        assert (await writer.put(readings)).inserted == 4
    stored = await rows(store_settings.database_url,
                        "select time, value, quality, status_code, server_time from samples "
                        "order by time")
    assert stored == [(r.time, r.value, int(r.quality), r.status_code, r.server_time)
                      for r in readings]


async def test_a_replayed_batch_leaves_no_second_dead_letter_or_conflict(
        store_settings: StoreSettings) -> None:
    """A spool drain after a commit that timed out, an MQTT redelivery: the side tables are
    as idempotent as samples."""
    from collector.contracts import DeadLetter

    letter = DeadLetter("mqtt:test", "payload is not JSON", b"\xff\x00", {"topic": "x\x00y"})
    async with StoreWriter(store_settings) as writer:
        await writer.put([vacuum(0, 12.0)])
        for _ in range(2):
            await writer.write([vacuum(0, 99.0), vacuum(1, math.nan)], (), [letter])
    url = store_settings.database_url
    assert await rows(url, "select count(*) from sample_conflicts") == [(1,)]
    assert await rows(url, "select reason from dead_letters order by reason") == [
        ("payload is not JSON",), ("value is NaN with Good status",)]
