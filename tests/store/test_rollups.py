"""The 1-minute and 1-hour rollups agree with the raw samples, late data included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from collector.contracts import STATUS_BAD, Quality, Reading
from collector.store import StoreSettings, StoreWriter, refresh_rollups
from collector.store.rollups import contiguous

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
ZONE = "yulin-1/reduction/furnace-01/zone-2"


def zone_temp(seconds: int, value: float, quality: Quality = Quality.GOOD) -> Reading:
    return Reading(ZONE, "zone_temp_c", value, T0 + timedelta(seconds=seconds), quality,
                   STATUS_BAD if quality is Quality.BAD else 0)


async def rollup(url: str, table: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            f"select bucket, n, avg_value, min_value, max_value, first_value, last_value "
            f"from {table} order by bucket")
        return await cur.fetchall()


async def test_rollups_match_hand_computed_aggregates(store_settings: StoreSettings) -> None:
    url = store_settings.database_url
    readings = [zone_temp(0, 1200.0), zone_temp(20, 1210.0), zone_temp(40, 1230.0),
                zone_temp(50, 5.0, Quality.BAD),  # Bad values never enter the rollups
                zone_temp(60, 1240.0), zone_temp(3600, 1250.0)]
    async with StoreWriter(store_settings) as writer:
        await writer.put(readings)
    result = await refresh_rollups(url)
    assert result.hours == 2
    assert await rollup(url, "samples_1m") == [
        (T0, 3, 1213.3333333333333, 1200.0, 1230.0, 1200.0, 1230.0),
        (T0 + timedelta(minutes=1), 1, 1240.0, 1240.0, 1240.0, 1240.0, 1240.0),
        (T0 + timedelta(hours=1), 1, 1250.0, 1250.0, 1250.0, 1250.0, 1250.0)]
    assert await rollup(url, "samples_1h") == [
        (T0, 4, 1220.0, 1200.0, 1240.0, 1200.0, 1240.0),
        (T0 + timedelta(hours=1), 1, 1250.0, 1250.0, 1250.0, 1250.0, 1250.0)]
    assert (await refresh_rollups(url)).hours == 0  # nothing new: nothing to do


async def test_late_data_updates_its_rollup(store_settings: StoreSettings) -> None:
    url = store_settings.database_url
    async with StoreWriter(store_settings) as writer:
        await writer.put([zone_temp(0, 1200.0), zone_temp(7200, 1200.0)])
        await refresh_rollups(url)
        await writer.put([zone_temp(10, 1220.0)])  # arrives two hours late
    result = await refresh_rollups(url)
    assert result.ranges == [(T0, T0 + timedelta(hours=1))]
    assert (await rollup(url, "samples_1h"))[0] == (T0, 2, 1210.0, 1200.0, 1220.0, 1200.0,
                                                    1220.0)


def test_contiguous_hours_merge_into_ranges() -> None:
    h = [T0 + timedelta(hours=i) for i in (3, 0, 1, 5)]
    assert contiguous(h) == [(T0, T0 + timedelta(hours=2)),
                             (T0 + timedelta(hours=3), T0 + timedelta(hours=4)),
                             (T0 + timedelta(hours=5), T0 + timedelta(hours=6))]
