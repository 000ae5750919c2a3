"""The database goes away under load: batches go to the spool (durable, acknowledged), and
when it is back the spool drains oldest-first — every sample lands exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from collector.collect import CollectorApp
from simulators.runner import RunOptions, ScenarioRun
from tests.collector.conftest import (
    collector_options,
    expected_rows,
    ports_for,
    stored_counts,
    test_plant,
    wait_until,
)
from tests.simulators.conftest import short_scenario
from tests.tcp_proxy import TcpProxy

SOURCES = {"plc-kiln", "plc-refining", "plant-mqtt"}


async def test_database_outage_spools_then_drains_every_sample_exactly_once(
        db_url: str, tmp_path: Path) -> None:
    plant, site = test_plant()
    scenario = short_scenario(hours=12)
    info = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))
    await proxy.start()
    through_proxy = make_conninfo(db_url, host="127.0.0.1", port=proxy.port)
    ports, endpoints = ports_for(plant, SOURCES)
    run = ScenarioRun(plant, scenario, RunOptions(speed=3600, only=SOURCES, opcua_ports=ports))
    await run.start()
    peak_spool = 0
    try:
        async with CollectorApp(plant, collector_options(through_proxy, tmp_path, SOURCES,
                                                         endpoints)) as app:
            assert await wait_until(lambda: all(s.health.up for s in app.sources), 30)
            playing = asyncio.create_task(run.play())
            await asyncio.sleep(2.0)
            proxy.block()                                   # the database is gone
            assert await wait_until(lambda: not app.pipeline.stats.db_up, 20)
            for _ in range(16):                             # 4 s of the plant into the spool
                await asyncio.sleep(0.25)
                peak_spool = max(peak_spool, app.spool.readings)
            assert app.telemetry.health()["status"] == "degraded"
            proxy.unblock()                                 # and back
            await playing
            want = expected_rows(plant, scenario, SOURCES)

            async def all_stored() -> bool:
                return await stored_counts(db_url, site) == want

            assert await wait_until(all_stored, 90), "samples were lost in the outage"
            assert await wait_until(lambda: app.spool.batches == 0, 30)
            stats = app.pipeline.stats
    finally:
        await run.close()
        await proxy.stop()
    assert peak_spool > 0 and stats.readings_drained >= peak_spool
    assert stats.dropped_readings == 0 and stats.db_up


async def test_readings_dropped_by_a_full_spool_are_read_again_from_the_plc_history(
        db_url: str, tmp_path: Path) -> None:
    """Database away and a spool far too small: the OPC UA readings that did not fit are
    dropped (loudly) — and read back from the PLC's history once there is room again."""
    plant, site = test_plant()
    scenario = short_scenario(hours=12)
    sources = {"plc-kiln"}
    info = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))
    await proxy.start()
    ports, endpoints = ports_for(plant, sources)
    run = ScenarioRun(plant, scenario, RunOptions(speed=3600, only=sources, opcua_ports=ports))
    await run.start()
    options = collector_options(make_conninfo(db_url, host="127.0.0.1", port=proxy.port),
                                tmp_path, sources, endpoints, spool_max_bytes=8 * 1024,
                                queue_max_readings=200)
    options.opcua.heartbeat_timeout_s = 2.0  # the catch-up waits this long before reading
    try:
        async with CollectorApp(plant, options) as app:
            assert await wait_until(lambda: app.sources[0].health.up, 30)
            playing = asyncio.create_task(run.play())
            await asyncio.sleep(1.5)
            proxy.block()
            assert await wait_until(lambda: app.pipeline.stats.dropped_readings > 0, 20)
            proxy.unblock()
            await playing
            want = expected_rows(plant, scenario, sources)

            async def all_stored() -> bool:
                return await stored_counts(db_url, site) == want

            assert await wait_until(all_stored, 90), "dropped readings were not read again"
            assert app.sources[0].health.backfilled > 0
    finally:
        await run.close()
        await proxy.stop()
