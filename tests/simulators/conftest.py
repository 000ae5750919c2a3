"""Helpers for the simulator tests: a plant with its own site id (so a running demo or another
test never shares topics with ours), free ports, short scenarios."""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta

from collector.contracts import Plant, parse_plant
from simulators.scenario import Fault, Scenario
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_plant() -> tuple[Plant, str]:
    site = f"sim-{uuid.uuid4().hex[:8]}"
    text = (REPO / "plants" / "demo.yaml").read_text(encoding="utf-8")
    return parse_plant(text.replace("id: yulin-1", f"id: {site}", 1)), site


def short_scenario(hours: float, faults: list[Fault] | None = None, seed: int = 1,
                   sampling_s: int = 60) -> Scenario:
    return Scenario(name="test", description="test", duration=timedelta(hours=hours),
                    sampling=timedelta(seconds=sampling_s), seed=seed, faults=faults or [])
