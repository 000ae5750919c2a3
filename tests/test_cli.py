"""The `smeltwatch` command: every command loads; those of later issues say so plainly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

SMELTWATCH = str(REPO / ".venv" / "bin" / "smeltwatch")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SMELTWATCH, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("db", "collect", "sim", "record", "replay", "rules", "serve", "report",
                    "demo", "dashboards"):
        assert command in result.stdout
    assert "unavailable" not in result.stdout


@pytest.mark.parametrize(("args", "issue"), [
    (("rules", "run"), "#5"), (("serve",), "#6"), (("report",), "#6"),
    (("dashboards", "build"), "#7"),
])
def test_commands_of_later_issues_say_not_yet_implemented(args: tuple[str, ...],
                                                          issue: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert f"not yet implemented (issue {issue})" in result.stderr


def test_demo_runs_the_stack_and_stops_cleanly(empty_database: str, tmp_path: Path) -> None:
    """The README's first command on a fresh database: migrates, starts the simulated plant
    and the collector, shows data arriving, and stops them all."""
    env = {"SMELTWATCH_DATABASE_URL": empty_database, "PATH": "/usr/bin",
           "SMELTWATCH_SPOOL_DIR": str(tmp_path / "spool"),
           "SMELTWATCH_MQTT_SESSION_EXPIRY_S": "10"}  # leave no session queueing on the broker
    result = subprocess.run([SMELTWATCH, "demo", "--speed", "3600", "--for", "25"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "plant yulin-1: 143 assets, 476 bindings" in result.stdout
    assert "started simulator: sim run normal-month --speed 3600" in result.stdout
    stored = [line for line in result.stdout.splitlines() if line.startswith("stopped: ")]
    samples = int(stored[0].split("samples ")[1].split()[0].replace(",", ""))
    assert samples > 10_000, result.stdout


def test_sim_list_names_every_scenario() -> None:
    result = run("sim", "list")
    assert result.returncode == 0
    for name in ("normal-month", "vacuum-leak", "retort-burn-through", "reversal-valve-stuck",
                 "regenerator-fouling", "low-lhv-days", "slag-shipments-stop",
                 "meter-rollover-reset", "data-dropouts-bad-quality", "clock-skewed-source",
                 "late-weighbridge-record"):
        assert name in result.stdout


def test_sim_describe_prints_address_space_and_topics() -> None:
    result = run("sim", "run", "vacuum-leak", "--describe", "--opcua-base-port", "14840")
    assert result.returncode == 0
    assert "OPC UA plc-furnace-02: opc.tcp://127.0.0.1:14842" in result.stdout
    assert "ns=urn:smeltwatch:yulin-1;s=reduction/furnace-02/retort-07.vacuum_pa  [Pa]" \
        in result.stdout
    assert "smelter/v1/yulin-1/utilities/gas-furnace-02/gas_volume_nm3_total  [Nm³]" \
        in result.stdout


def test_sim_run_unknown_scenario_is_a_clear_error() -> None:
    result = run("sim", "run", "volcano")
    assert result.returncode == 1
    assert "no scenario 'volcano'; available:" in result.stderr


def test_sim_run_without_a_broker_is_a_clear_error() -> None:
    result = run("sim", "run", "vacuum-leak", "--one-process", "--only", "plant-mqtt",
                 "--mqtt-url", "mqtt://127.0.0.1:1", "--speed", "0", "--duration", "1")
    assert result.returncode == 1
    assert "cannot connect to the MQTT broker at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_collect_mistakes_are_clear_errors(tmp_path: Path) -> None:
    missing = run("collect", "--plant", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "nope.yaml" in missing.stderr
    unknown = run("collect", "--only", "plc-moon")
    assert unknown.returncode == 1
    assert "no source plc-moon in the plant model; it has plc-kiln" in unknown.stderr
    for result in (missing, unknown):
        assert "Traceback" not in result.stderr


def test_collect_stops_cleanly_on_sigterm(tmp_path: Path, empty_database: str) -> None:
    """Started with the database missing: it spools, reports it, and a SIGTERM ends it with
    exit code 0 (the queue flushed)."""
    import signal
    import time

    env = {"PATH": "/usr/bin", "SMELTWATCH_DATABASE_URL": empty_database + "_absent",
           "SMELTWATCH_SPOOL_DIR": str(tmp_path / "spool"),
           "SMELTWATCH_MQTT_SESSION_EXPIRY_S": "10"}
    process = subprocess.Popen([SMELTWATCH, "collect", "--only", "plant-mqtt", "--metrics-port",
                                "0"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "the database is not reachable at start; spooling" in err
    assert "Traceback" not in err
