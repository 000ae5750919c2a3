"""scripts/setup-local-stack is idempotent: on a machine it has set up, a run changes nothing."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tests.conftest import REPO

WATCHED = [Path("/etc/mosquitto/mosquitto.conf"), Path("/etc/mosquitto/conf.d/smeltwatch.conf"),
           Path("/etc/postgresql/15/main/conf.d/50-timescaledb.conf")]


def fingerprint() -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in WATCHED if p.exists()}


def test_second_run_changes_nothing() -> None:
    before = fingerprint()
    result = subprocess.run([str(REPO / "scripts" / "setup-local-stack")], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "DONE:" not in result.stdout, result.stdout
    assert "nothing to do: the local stack is ready" in result.stdout
    assert fingerprint() == before


def test_unknown_step_is_refused() -> None:
    result = subprocess.run([str(REPO / "scripts" / "setup-local-stack"), "kafka"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "unknown step 'kafka'" in result.stderr
