"""Helpers for the collector tests: the demo plant with its own site id and ports, settings
pointing at the test database, and a way to wait for rows."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from collector.collect import CollectOptions, TelemetrySettings
from collector.contracts import Plant, parse_plant
from collector.pipeline.settings import PipelineSettings
from collector.sources.mqtt.settings import MqttSettings
from collector.sources.opcua.settings import OpcUaSettings
from collector.store import StoreSettings
from simulators.model import PlantSim
from simulators.scenario import Scenario
from tests.conftest import REPO
from tests.simulators.conftest import free_port

NAMESPACE = 'namespace: "urn:smeltwatch:yulin-1"'
# simulated time runs fast in tests: every sample must fit the server's queue per item
FAST_OPCUA = (f'{NAMESPACE}, publishing_interval_ms: 100, sampling_interval_ms: 0, '
              f'queue_size: 20000')


def test_plant_yaml() -> tuple[str, str]:
    """(the demo plant's YAML with its own site id and fast OPC UA subscriptions, site)."""
    site = f"col-{uuid.uuid4().hex[:8]}"
    text = (REPO / "plants" / "demo.yaml").read_text(encoding="utf-8")
    return text.replace("id: yulin-1", f"id: {site}", 1).replace(NAMESPACE, FAST_OPCUA), site


def test_plant() -> tuple[Plant, str]:
    text, site = test_plant_yaml()
    return parse_plant(text), site


test_plant.__test__ = False  # type: ignore[attr-defined]  # helpers, not tests
test_plant_yaml.__test__ = False  # type: ignore[attr-defined]


def ports_for(plant: Plant, sources: set[str]) -> tuple[dict[str, int], dict[str, str]]:
    """(port per OPC UA source for the simulator, endpoint per source for the collector)."""
    ports = {s.id: free_port() for s in plant.sources if s.id in sources
             and s.protocol == "opcua"}
    return ports, {sid: f"opc.tcp://127.0.0.1:{port}" for sid, port in ports.items()}


def collector_options(db_url: str, tmp_path: Path, sources: set[str],
                      endpoints: dict[str, str], **pipeline: object) -> CollectOptions:
    return CollectOptions(
        only=sources, endpoints=endpoints,
        store=StoreSettings(database_url=db_url, pool_max_size=2, connect_timeout_s=2),
        pipeline=PipelineSettings(spool_dir=tmp_path / "spool", batch_max_wait_s=0.05,
                                  probe_interval_s=0.5, write_timeout_s=5.0,
                                  **pipeline),  # type: ignore[arg-type]
        opcua=OpcUaSettings(pki_dir=tmp_path / "pki", heartbeat_timeout_s=4.0,
                            reconnect_max_delay_s=2.0, request_timeout_s=5.0),
        mqtt=MqttSettings(client_id=f"test-collector-{uuid.uuid4().hex[:8]}",
                          reconnect_max_delay_s=2),
        telemetry=TelemetrySettings(metrics_port=0))


def expected_values(plant: Plant, scenario: Scenario, sources: set[str]
                    ) -> dict[tuple[str, str], int]:
    """Values per (asset, signal) the simulator sends for these sources."""
    served = {(b.asset, b.signal) for b in plant.bindings() if b.source in sources}
    counts: dict[tuple[str, str], int] = {}
    for frame in PlantSim(plant, scenario).frames():
        for v in frame.values:
            key = (v.asset, v.signal)
            if key in served:
                counts[key] = counts.get(key, 0) + 1
    return counts


def expected_rows(plant: Plant, scenario: Scenario, sources: set[str]
                  ) -> dict[tuple[str, str], int]:
    """Rows per (asset, signal) a collector stores: every value, plus each OPC UA node's boot
    state (BadWaitingForInitialData, a second before the first value) it reads at subscribe."""
    on_opcua = {(b.asset, b.signal) for b in plant.bindings() if b.source in sources
                and plant.source(b.source).protocol == "opcua"}
    return {key: n + (key in on_opcua) for key, n in expected_values(plant, scenario,
                                                                      sources).items()}


async def stored_counts(url: str, site: str) -> dict[tuple[str, str], int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "select t.asset, t.signal, count(*) from samples s join tags t using (tag_id) "
            "where t.asset like %s group by 1, 2", (f"{site}/%",))
        return {(a, s): int(n) for a, s, n in await cursor.fetchall()}


async def wait_until(check: Callable[[], object], timeout_s: float = 60.0,
                     every_s: float = 0.25) -> bool:
    """Poll an async or plain predicate until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        await asyncio.sleep(every_s)
    return False


def count_diff(stored: dict[tuple[str, str], int], want: dict[tuple[str, str], int]
               ) -> dict[str, tuple[int, int]]:
    """signal@asset-tail → (stored, wanted) where they differ: what an assertion shows."""
    keys = set(stored) | set(want)
    return {f"{k[1]}@{k[0].rsplit('/', 1)[-1]}": (stored.get(k, 0), want.get(k, 0))
            for k in sorted(keys) if stored.get(k, 0) != want.get(k, 0)}
