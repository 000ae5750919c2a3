"""`smeltwatch sim run`, `record` and `replay` as a developer runs them: separate processes."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from tests.conftest import REPO
from tests.mqtt_clients import Subscriber
from tests.simulators.conftest import free_port

SMELTWATCH = str(REPO / ".venv" / "bin" / "smeltwatch")
PLANT = REPO / "plants" / "demo.yaml"
OPCUA_SOURCES = 6  # the demo plant's PLCs; plc-refining is the sixth


def smeltwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SMELTWATCH, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def test_record_a_running_simulator_then_replay_it(tmp_path: Path) -> None:
    base = free_port()
    plc_refining = base + OPCUA_SOURCES - 1
    recording = tmp_path / "refining.swrec"
    simulator = subprocess.Popen(
        [SMELTWATCH, "sim", "run", "normal-month", "--one-process", "--only", "plc-refining",
         "--duration", "2", "--speed", "3600", "--opcua-base-port", str(base),
         "--start-delay", "3"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        recorded = smeltwatch("record", str(recording), "--opcua",
                              f"opc.tcp://127.0.0.1:{plc_refining}", "--idle", "4")
    finally:
        _, sim_log = simulator.communicate(timeout=60)
    assert simulator.returncode == 0, sim_log
    assert recorded.returncode == 0, recorded.stderr
    assert "OPC UA values on 2 channels" in recorded.stdout  # melt and flue temperature

    info = smeltwatch("replay", str(recording), "--info")
    assert info.returncode == 0, info.stderr
    assert f"opcua opc.tcp://127.0.0.1:{plc_refining}: 2 channels" in info.stdout
    assert "content digest: " in info.stdout

    dump = [json.loads(line) for line in smeltwatch("replay", str(recording), "--dump")
            .stdout.splitlines()]
    melt = [d for d in dump if d["channel"].endswith("refining_melt_temp_c")]
    # the value when the recorder subscribed, then one a simulated minute
    assert [d["source_time"] for d in melt[-3:]] == [
        "2026-11-01T01:58:00+00:00", "2026-11-01T01:59:00+00:00", "2026-11-01T02:00:00+00:00"]
    assert all(640 < d["value"] < 740 for d in melt if d["status"] == 0)

    site = f"cli-{uuid.uuid4().hex[:6]}"
    with Subscriber(topic=f"smelter/v1/{site}/#"):
        replayed = smeltwatch("replay", str(recording), "--rate", "0", "--opcua-endpoint",
                              f"opc.tcp://127.0.0.1:{plc_refining}=opc.tcp://127.0.0.1:"
                              f"{free_port()}")
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed 0 MQTT messages and {len(dump)} OPC UA values" in replayed.stdout


def test_recording_mistakes_are_clear_errors(tmp_path: Path) -> None:
    nothing = smeltwatch("record", str(tmp_path / "x.swrec"))
    assert nothing.returncode == 2
    assert "nothing to record: give --plant, --mqtt-url or --opcua" in nothing.stderr

    missing = smeltwatch("replay", str(tmp_path / "missing.swrec"))
    assert missing.returncode == 1 and "error: no recording at" in missing.stderr

    not_a_recording = tmp_path / "notes.swrec"
    not_a_recording.write_text("shift log, not a recording\n")
    wrong = smeltwatch("replay", str(not_a_recording), "--info")
    assert wrong.returncode == 1 and "is not a smeltwatch recording" in wrong.stderr
    overwrite = smeltwatch("record", str(not_a_recording), "--mqtt-url", "mqtt://127.0.0.1:1883",
                           "--duration", "1")
    assert overwrite.returncode == 1 and "a recording is never overwritten" in overwrite.stderr
    assert not_a_recording.read_text() == "shift log, not a recording\n"

    no_server = smeltwatch("record", str(tmp_path / "y.swrec"), "--opcua",
                           f"opc.tcp://127.0.0.1:{free_port()}", "--wait", "1")
    assert no_server.returncode == 1
    assert "cannot reach the OPC UA server at opc.tcp://127.0.0.1:" in no_server.stderr
    for result in (nothing, missing, wrong, overwrite, no_server):
        assert "Traceback" not in result.stderr
