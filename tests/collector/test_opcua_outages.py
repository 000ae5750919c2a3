"""The OPC UA source when the server goes away, comes back, or cannot be trusted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from collector.collect import CollectorApp
from collector.contracts import parse_plant
from collector.sources.opcua.pki import Pki
from collector.sources.opcua.source import OpcUaCollectorSource
from simulators.opcua import OpcUaChaos, OpcUaSecurity
from simulators.runner import RunOptions, ScenarioRun
from tests.collector.conftest import (
    collector_options,
    count_diff,
    expected_rows,
    ports_for,
    stored_counts,
    test_plant,
    wait_until,
)
from tests.simulators.conftest import short_scenario

SOURCES = {"plc-kiln"}  # six variables


def sessions_on(run: ScenarioRun) -> int:
    """Sessions the simulated PLC holds (asyncua keeps them in a private registry)."""
    return len(run.servers[0].device.server.iserver._external_sessions)


async def test_plc_restart_reconnects_and_backfills_the_gap_without_loss_or_leak(
        db_url: str, tmp_path: Path) -> None:
    plant, site = test_plant()
    scenario = short_scenario(hours=8)
    ports, endpoints = ports_for(plant, SOURCES)
    run = ScenarioRun(plant, scenario, RunOptions(speed=3600, only=SOURCES, opcua_ports=ports,
                                                  linger_s=0))
    await run.start()
    device = run.servers[0].device
    options = collector_options(db_url, tmp_path, SOURCES, endpoints)
    # several CreateMonitoredItems calls: live values arrive before the backfill starts
    options.opcua.max_items_per_call = 2
    try:
        async with CollectorApp(plant, options) as app:
            source = app.sources[0]
            assert isinstance(source, OpcUaCollectorSource)
            assert await wait_until(lambda: source.health.up, 30)
            playing = asyncio.create_task(run.play())
            await asyncio.sleep(2.0)
            await device.stop()          # the PLC's OPC UA server restarts; its logic and
            assert await wait_until(lambda: not source.health.up, 20)  # historian go on
            await asyncio.sleep(1.0)
            await device.start()
            assert await wait_until(lambda: source.health.up, 30)
            await playing
            want = expected_rows(plant, scenario, SOURCES)

            async def all_stored() -> bool:
                return await stored_counts(db_url, site) == want

            assert await wait_until(all_stored, 60), await stored_counts(db_url, site)
            assert source.health.reconnects == 1
            assert source.health.backfilled > 0
            assert sessions_on(run) == 1  # the old server's session died with it
    finally:
        await run.close()


async def test_dropped_connections_leave_no_session_behind(db_url: str, tmp_path: Path) -> None:
    """The PLC cuts every connection every few seconds; the collector reconnects each time,
    and the orphaned sessions expire on the server (session timeout) instead of piling up."""
    plant, _ = test_plant()
    ports, endpoints = ports_for(plant, SOURCES)
    run = ScenarioRun(plant, short_scenario(hours=1), RunOptions(
        speed=600, only=SOURCES, opcua_ports=ports, opcua_chaos=OpcUaChaos(2.5)))
    await run.start()
    options = collector_options(db_url, tmp_path, SOURCES, endpoints)
    options.opcua.session_timeout_s = 5.0  # the server's minimum (asyncua: 5 s)
    try:
        async with CollectorApp(plant, options) as app:
            source = app.sources[0]
            await run.play()
            assert await wait_until(lambda: source.health.reconnects >= 2, 30)
            assert await wait_until(lambda: source.health.up, 30)
            peak = sessions_on(run)
            run.servers[0].device.calm()
            assert await wait_until(lambda: sessions_on(run) == 1, 30)
    finally:
        await run.close()
    assert peak <= 3


async def test_an_untrusted_server_certificate_is_refused_until_an_operator_trusts_it(
        db_url: str, tmp_path: Path) -> None:
    plant, site = test_plant()
    data = plant.model_dump(mode="json", exclude_none=True)
    for source in data["sources"]:
        if source["id"] == "plc-kiln":
            source["security"] = "sign_encrypt"
    secured = parse_plant(json.dumps(data))
    ports, endpoints = ports_for(secured, SOURCES)
    run = ScenarioRun(secured, short_scenario(hours=1), RunOptions(
        speed=600, only=SOURCES, opcua_ports=ports,
        security=OpcUaSecurity(policies=("sign_encrypt",), cert_dir=tmp_path / "plc")))
    await run.start()
    try:
        async with CollectorApp(secured, collector_options(db_url, tmp_path, SOURCES,
                                                           endpoints)) as app:
            source = app.sources[0]
            assert await wait_until(lambda: "not trusted" in source.health.last_error, 30)
            error = source.health.last_error
            assert f"opc.tcp://127.0.0.1:{ports['plc-kiln']}" in error
            assert "smeltwatch collect certs trust " in error
            assert not source.health.up and await stored_counts(db_url, site) == {}
            rejected = list((tmp_path / "pki" / "rejected").glob("*.der"))
            assert len(rejected) == 1
            Pki(tmp_path / "pki").trust(rejected[0].stem)   # the operator trusts it
            assert await wait_until(lambda: source.health.up, 30)
            await run.play()
            assert await wait_until(lambda: stored_counts(db_url, site), 30)
    finally:
        await run.close()


async def test_a_collector_started_while_the_plc_is_down_resumes_from_the_store(
        db_url: str, tmp_path: Path) -> None:
    """Collector A stops; the PLC goes down too; collector B starts while it is down and,
    when it is back, reads everything since the newest stored sample from its history."""
    plant, site = test_plant()
    scenario = short_scenario(hours=10)
    ports, endpoints = ports_for(plant, SOURCES)
    run = ScenarioRun(plant, scenario, RunOptions(speed=3600, only=SOURCES, opcua_ports=ports))
    await run.start()
    device = run.servers[0].device
    try:
        first = CollectorApp(plant, collector_options(db_url, tmp_path / "a", SOURCES,
                                                      endpoints))
        await first.start()
        assert await wait_until(lambda: first.sources[0].health.up, 30)
        playing = asyncio.create_task(run.play())
        await asyncio.sleep(2.0)
        await first.stop()
        await device.stop()
        second = CollectorApp(plant, collector_options(db_url, tmp_path / "b", SOURCES,
                                                       endpoints))
        async with second:
            source = second.sources[0]
            assert await wait_until(lambda: "connection refused" in source.health.last_error,
                                    20)
            await asyncio.sleep(2.0)  # hours of simulated plant go by
            await device.start()
            await playing
            want = expected_rows(plant, scenario, SOURCES)

            async def all_stored() -> bool:
                return await stored_counts(db_url, site) == want

            assert await wait_until(all_stored, 60), count_diff(
                await stored_counts(db_url, site), want)
            assert source.health.backfilled > 60
    finally:
        await run.close()
