"""`smeltwatch collect` killed with SIGKILL under load: after a restart no sample is missing —
MQTT messages it had not acknowledged come again from the broker, what it had acknowledged was
durable, and the OPC UA gap is read back from the server's history."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from collector.contracts import parse_plant
from simulators.runner import RunOptions, ScenarioRun
from tests.collector.conftest import (
    count_diff,
    expected_rows,
    ports_for,
    stored_counts,
    test_plant_yaml,
    wait_until,
)
from tests.conftest import REPO
from tests.simulators.conftest import short_scenario

SOURCES = {"plc-kiln", "plant-mqtt"}
SMELTWATCH = str(REPO / ".venv" / "bin" / "smeltwatch")


def start_collector(plant_file: Path, db_url: str, tmp_path: Path, endpoint: str,
                    log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SMELTWATCH_DATABASE_URL": db_url,
           "SMELTWATCH_SPOOL_DIR": str(tmp_path / "spool"),
           "SMELTWATCH_OPCUA_PKI_DIR": str(tmp_path / "pki"),
           "SMELTWATCH_MQTT_CLIENT_ID": f"sigkill-{tmp_path.name}",
           "SMELTWATCH_OPCUA_RECONNECT_MAX_DELAY_S": "2", "SMELTWATCH_BATCH_MAX_WAIT_S": "0.05"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [SMELTWATCH, "collect", "--plant", str(plant_file), "--only", "plc-kiln",
             "--only", "plant-mqtt", "--metrics-port", "0"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)


async def test_sigkill_under_load_loses_no_sample(db_url: str, tmp_path: Path) -> None:
    text, site = test_plant_yaml()
    plant = parse_plant(text)
    ports, endpoints = ports_for(plant, SOURCES)
    # the collector process reads the plant file: give it the simulator's port
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(text.replace('"opc.tcp://127.0.0.1:4841"', f'"{endpoints["plc-kiln"]}"'),
                          encoding="utf-8")
    scenario = short_scenario(hours=16)
    run = ScenarioRun(plant, scenario, RunOptions(speed=3600, only=SOURCES, opcua_ports=ports,
                                                  batched=False))
    log = tmp_path / "collector.log"
    await run.start()
    collector = start_collector(plant_file, db_url, tmp_path, endpoints["plc-kiln"], log)
    try:
        async def collecting() -> bool:
            return bool(await stored_counts(db_url, site))

        assert await wait_until(collecting, 60), log.read_text()
        playing = asyncio.create_task(run.play())
        await asyncio.sleep(4.0)
        collector.send_signal(signal.SIGKILL)              # no flush, no goodbye
        collector.wait(timeout=10)
        before = sum((await stored_counts(db_url, site)).values())
        await asyncio.sleep(2.0)
        collector = start_collector(plant_file, db_url, tmp_path, endpoints["plc-kiln"], log)
        await playing
        want = expected_rows(plant, scenario, SOURCES)

        async def all_stored() -> bool:
            return await stored_counts(db_url, site) == want

        assert await wait_until(all_stored, 90), count_diff(
            await stored_counts(db_url, site), want)
    finally:
        collector.send_signal(signal.SIGTERM)
        code = collector.wait(timeout=30)
        await run.close()
    assert 0 < before < sum(want.values())  # it was killed mid-stream
    assert code == 0, log.read_text()[-3000:]
