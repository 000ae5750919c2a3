"""Both protocols into TimescaleDB: the simulated plant's PLCs (OPC UA) and meters (MQTT)
through a running collector, every value stored once with its tag, unit and quality."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from asyncua import ua

from collector.collect import CollectorApp
from collector.contracts import CATALOGUE
from simulators.model import PlantSim
from simulators.runner import RunOptions, ScenarioRun
from simulators.scenario import Fault
from tests.collector.conftest import (
    collector_options,
    expected_rows,
    ports_for,
    stored_counts,
    test_plant,
    wait_until,
)
from tests.simulators.conftest import short_scenario
from tests.store.test_writer import rows

SOURCES = {"plc-refining", "plc-furnace-01", "plant-mqtt"}


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_both_protocols_flow_into_samples_with_tags_units_and_qualities(
        db_url: str, tmp_path: Path) -> None:
    plant, site = test_plant()
    bad = Fault(kind="bad_quality", target="reduction/furnace-01/zone-2",
                at=timedelta(minutes=20), duration=timedelta(minutes=10))
    scenario = short_scenario(hours=2, faults=[bad])
    ports, endpoints = ports_for(plant, SOURCES)
    run = ScenarioRun(plant, scenario, RunOptions(speed=3600, only=SOURCES, opcua_ports=ports))
    await run.start()
    try:
        app = CollectorApp(plant, collector_options(db_url, tmp_path, SOURCES, endpoints))
        async with app:
            assert await wait_until(lambda: all(s.health.up for s in app.sources), 30)
            await run.play()
            want = expected_rows(plant, scenario, SOURCES)

            async def all_stored() -> bool:
                return await stored_counts(db_url, site) == want

            assert await wait_until(all_stored, 60), "not every value was stored"
            status, health = await http_get(app.http.port, "/health")
            _, metrics = await http_get(app.http.port, "/metrics")
    finally:
        await run.close()

    assert status == 200
    report = json.loads(health)
    assert report["status"] == "ok" and report["database"]["up"]
    assert {s["id"]: s["up"] for s in report["sources"]} == dict.fromkeys(SOURCES, True)
    assert b"smeltwatch_readings_stored_total" in metrics
    assert b'smeltwatch_source_up{protocol="opcua",source="plc-furnace-01"} 1.0' in metrics
    assert b"smeltwatch_ingest_latency_seconds_bucket" in metrics

    # units come from the catalogue; quality and the full status code are kept
    units = dict(await rows(db_url, f"select signal, unit from tags where asset like '{site}/%'"))
    assert units["vacuum_pa"] == "Pa" == CATALOGUE["vacuum_pa"].unit
    assert units["gas_volume_nm3_total"] == "Nm³"
    zone2 = await rows(db_url, (
        "select s.time, s.value, s.quality, s.status_code from samples s join tags t "
        f"using (tag_id) where t.asset = '{site}/reduction/furnace-01/zone-2' order by time"))
    bad_from, bad_to = scenario.start + timedelta(minutes=20), scenario.start + timedelta(
        minutes=30)
    during = [r for r in zone2 if bad_from <= r[0] < bad_to]  # type: ignore[operator]
    assert len(during) == 10
    assert all(v is None and q == 2 and code == ua.StatusCodes.BadSensorFailure
               for _, v, q, code in during)
    assert zone2[0][2:] == (2, ua.StatusCodes.BadWaitingForInitialData)
    assert all(r[2] == 0 for r in zone2[1:] if r not in during)

    # material events from the weighbridges, once each
    sim = PlantSim(plant, scenario)
    sent = {e.key for frame in sim.frames() for e in frame.events}
    stored = {k for (k,) in await rows(db_url, "select event_key from events")}
    assert stored == sent and len(sent) > 10
    assert await rows(db_url, "select count(*) from dead_letters") == [(0,)]
