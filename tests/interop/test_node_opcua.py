"""The collector against an OPC UA server from another stack: node-opcua (Node.js), not the
asyncua simulators. The server (`opcua_server.mjs`) runs as a subprocess; node-opcua is
installed by `scripts/setup-local-stack nodeopcua` (tests/interop/package-lock.json)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asyncua import Client, ua

from collector.collect import CollectorApp
from collector.contracts import Plant, Quality, parse_plant
from collector.sources.opcua.addresses import resolve
from collector.sources.opcua.pki import Pki
from collector.sources.opcua.source import OpcUaCollectorSource
from tests.collector.conftest import collector_options, wait_until
from tests.simulators.conftest import free_port
from tests.store.test_writer import rows

HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = HERE / "opcua_server.mjs"
NODE_OPCUA_VERSION = json.loads((HERE / "package.json").read_text())["dependencies"]["node-opcua"]
NAMESPACE = "urn:smeltwatch:interop:node-opcua-plc"
SOURCE = "plc-node-opcua"
PERIOD_S = 0.1  # the server's update period
BAD_SENSOR_FAILURE = 0x808C_0000
ZONES = 4
NODE = shutil.which("node")


def _not_runnable() -> str | None:
    if NODE is None:
        return "Node.js (node) is not installed; the node-opcua interop tests need it"
    installed = HERE / "node_modules" / "node-opcua" / "package.json"
    if not installed.is_file():
        return ("node-opcua is not installed in tests/interop/node_modules: run "
                "scripts/setup-local-stack nodeopcua")
    version = json.loads(installed.read_text())["version"]
    if version != NODE_OPCUA_VERSION:
        return (f"tests/interop/node_modules has node-opcua {version}, the lock wants "
                f"{NODE_OPCUA_VERSION}: run scripts/setup-local-stack nodeopcua")
    return None


_REASON = _not_runnable()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


class NodeOpcUaServer:
    """opcua_server.mjs as a subprocess: stdout lines are collected, commands go to stdin."""

    def __init__(self, port: int, pki: Path, log: Path, security: str = "none",
                 trust_client: Path | None = None) -> None:
        self.port, self.pki, self.log = port, pki, log
        self.security, self.trust_client = security, trust_client
        self.lines: list[str] = []
        self.cert_path: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        assert NODE is not None
        args = [str(SERVER_SCRIPT), "--port", str(self.port), "--namespace", NAMESPACE,
                "--pki", str(self.pki), "--security", self.security,
                "--period-ms", str(int(PERIOD_S * 1000))]
        if self.trust_client is not None:
            args += ["--trust-client", str(self.trust_client)]
        self.lines.clear()
        with self.log.open("ab") as stderr:
            self._proc = await asyncio.create_subprocess_exec(
                NODE, *args, cwd=HERE, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=stderr)
        self._reader = asyncio.create_task(self._read(self._proc))
        ready = await self._expect("READY", 60)
        assert ready, f"node-opcua server did not start: {self.lines}, see {self.log}"
        cert = next(line for line in self.lines if line.startswith("CERT "))
        self.cert_path = Path(cert.removeprefix("CERT "))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            self.lines.append(raw.decode().rstrip())
            self._changed.set()
        self._changed.set()

    async def _expect(self, line: str, timeout_s: float = 20, after: int = 0) -> bool:
        """Wait until a line from the `after`-th on starts with `line`."""
        def found() -> bool:
            return any(x.startswith(line) for x in self.lines[after:])

        async def seen() -> None:
            while not found() and not (self._reader is None or self._reader.done()):
                self._changed.clear()
                await self._changed.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen(), timeout_s)
        return found()

    async def command(self, text: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        after = len(self.lines)
        self._proc.stdin.write(f"{text}\n".encode())
        await self._proc.stdin.drain()
        assert await self._expect(f"OK {text}", after=after), \
            f"{text!r} not done: {self.lines[-5:]}; see {self.log}"

    async def stop(self) -> int:
        """SIGTERM; the exit code (0: a clean shutdown)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if self._reader is not None:
            await self._reader
        return code


@contextlib.asynccontextmanager
async def node_opcua_server(tmp_path: Path, **options: object) -> AsyncIterator[NodeOpcUaServer]:
    server = NodeOpcUaServer(free_port(), tmp_path / "server-pki", tmp_path / "server.log",
                             **options)  # type: ignore[arg-type]
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


OMITTED = ["fuel_gas_flow_nm3_h", "fuel_gas_pressure_kpa", "flue_exhaust_temp_c", "flue_o2_pct",
           "reversal_valve_state", "reversal_count_total", "air_preheat_temp_c",
           "gas_preheat_temp_c", "vacuum_pa", "condenser_water_temp_c", "cycle_state",
           "cycle_elapsed_h"]


def interop_plant(endpoint: str, security: str = "none") -> tuple[Plant, str]:
    """Four furnace zones on the default template (string NodeIds), and a refining furnace
    bound by overrides to numeric NodeIds (one in kelvin, one with its namespace URI)."""
    site = f"iop-{uuid.uuid4().hex[:8]}"
    text = f"""
site:
  id: {site}
  name: {{en: node-opcua interop, zh: 互操作测试}}
  shifts: [{{name: day, start: "08:00"}}]
sources:
  - id: {SOURCE}
    protocol: opcua
    endpoint: "{endpoint}"
    namespace: "{NAMESPACE}"
    security: {security}
    publishing_interval_ms: 100
    sampling_interval_ms: 0
    queue_size: 1000
areas:
  - id: reduction
    stage: reduction
    equipment:
      - id: furnace-01
        kind: reduction_furnace
        source: {SOURCE}
        retorts: 1
        zones: {ZONES}
        burner_pairs: 1
        cycle_h: 20
        retort_output_t_per_cycle: 0.2
        reversal_period_s: 60
        omit: [{", ".join(OMITTED)}]
  - id: refining
    stage: refining
    equipment:
      - id: refiner-01
        kind: refining_furnace
        source: {SOURCE}
        bindings:
          refining_melt_temp_c: {{address: "i=2001", unit: K}}
          refining_flue_temp_c: {{address: "nsu={NAMESPACE};i=2002"}}
"""
    return parse_plant(text), site


Row = tuple[datetime, float | None, int, int]  # time, value, quality, status code


async def stored(db_url: str, site: str) -> dict[tuple[str, str], list[Row]]:
    out: dict[tuple[str, str], list[Row]] = {}
    for asset, name, when, value, quality, code in await rows(db_url, (
            "select t.asset, t.signal, s.time, s.value, s.quality, s.status_code from samples s "
            f"join tags t using (tag_id) where t.asset like '{site}/%' order by s.time")):
        out.setdefault((asset, name), []).append((when, value, quality, code))  # type: ignore[arg-type]
    return out


async def every_key_has(db_url: str, site: str, plant: Plant, n: int,
                        after: datetime | None = None) -> bool:
    have = await stored(db_url, site)
    keys = [(b.asset, b.signal) for b in plant.bindings()]
    return all(len([r for r in have.get(k, []) if after is None or r[0] > after]) >= n
               for k in keys)


async def server_history(endpoint: str, plant: Plant) -> dict[tuple[str, str], list[Row]]:
    """What node-opcua's historian holds for every binding, as the collector would store it."""
    out: dict[tuple[str, str], list[Row]] = {}
    async with Client(endpoint, timeout=10) as client:
        namespaces = await client.get_namespace_array()
        for b in plant.bindings():
            node_id = resolve(b.address, NAMESPACE, namespaces)
            values = await client.get_node(node_id).read_raw_history(
                datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1))
            out[(b.asset, b.signal)] = [
                (v.SourceTimestamp,
                 None if v.Value is None or v.Value.Value is None else b.convert(v.Value.Value),
                 Quality.from_status_code(v.StatusCode.value), v.StatusCode.value)
                for v in values]
    return out


def largest_gap(times: Sequence[datetime]) -> float:
    return max(((b - a).total_seconds() for a, b in itertools.pairwise(times)), default=0.0)


def collector_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.ERROR and r.name.startswith("collector")]


async def test_values_qualities_and_a_network_outage_backfilled_from_node_opcua_history(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with node_opcua_server(tmp_path) as server:
        plant, site = interop_plant(server.endpoint)
        options = collector_options(db_url, tmp_path, {SOURCE}, {})
        async with CollectorApp(plant, options) as app:
            source = app.sources[0]
            assert isinstance(source, OpcUaCollectorSource)
            assert await wait_until(lambda: source.health.up, 30), source.health.last_error
            assert await wait_until(lambda: every_key_has(db_url, site, plant, 5), 30)

            await server.command("bad 2")      # zone 2's thermocouple fails for a while
            await asyncio.sleep(1.0)
            await server.command("good 2")
            await asyncio.sleep(0.5)

            outage_from = datetime.now(UTC)
            await server.command("outage")     # no listener, open connections cut
            assert await wait_until(lambda: not source.health.up, 20)
            await asyncio.sleep(2.0)           # reconnect attempts are refused meanwhile
            await server.command("resume")
            outage_to = datetime.now(UTC)
            assert await wait_until(lambda: source.health.up and source.health.backfilled > 0,
                                    30), source.health.last_error
            await asyncio.sleep(1.0)           # live values again after the backfill
        # the collector has stopped: everything it handed on is stored
        history = await server_history(server.endpoint, plant)
        got = await stored(db_url, site)
        assert await server.stop() == 0  # SIGTERM: a clean shutdown

    assert source.sessions_opened >= 2 and source.health.reconnects >= 1
    assert not collector_errors(caplog)
    assert await rows(db_url, "select count(*) from dead_letters") == [(0,)]

    # tags: the template addresses (string NodeIds) and the overrides (numeric ones)
    zone = [(f"{site}/reduction/furnace-01/zone-{z}", "zone_temp_c") for z in range(1, ZONES + 1)]
    melt = (f"{site}/refining/refiner-01", "refining_melt_temp_c")
    flue = (f"{site}/refining/refiner-01", "refining_flue_temp_c")
    assert set(got) == {*zone, melt, flue}
    units = {name: unit for name, unit in await rows(
        db_url, f"select signal, unit from tags where asset like '{site}/%'")}
    assert units == {"zone_temp_c": "°C", "refining_melt_temp_c": "°C",
                     "refining_flue_temp_c": "°C"}
    assert all(650 < r[1] < 750 for r in got[melt])  # type: ignore[operator]  # 973 K in °C

    # quality: zone 2's failure is stored with its status code and no value; the rest is Good
    bad = [r for r in got[zone[1]] if r[2] != 0]
    assert len(bad) >= 5
    assert all(v is None and q == 2 and code == BAD_SENSOR_FAILURE for _, v, q, code in bad)
    assert all(r[1] is not None and r[2:] == (0, 0)
               for key, series in got.items() for r in series if r not in bad)

    # nothing lost: what the collector stored is what node-opcua recorded, up to the last
    # stored value — the outage included, read back with HistoryRead
    for key, series in got.items():
        last = series[-1][0]
        recorded = [r for r in history[key] if r[0] <= last]
        assert series == recorded, (key, len(series), len(recorded),
                                    sorted(set(recorded) - set(series))[:5])
        during = [r for r in series if outage_from <= r[0] <= outage_to]
        assert len(during) >= (outage_to - outage_from).total_seconds() / PERIOD_S / 2, key
        times = [r[0] for r in series]
        # at most two update periods between stored values, unless the server itself paused
        bound = max(2 * PERIOD_S, largest_gap([r[0] for r in recorded])) + 0.01
        assert largest_gap(times) <= bound, (key, largest_gap(times))
    assert source.health.backfilled >= len(got) * (outage_to - outage_from).total_seconds() \
        / PERIOD_S / 2


async def test_server_process_restart_on_the_same_port_reconnects(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with node_opcua_server(tmp_path) as server:
        plant, site = interop_plant(server.endpoint)
        async with CollectorApp(plant, collector_options(db_url, tmp_path, {SOURCE}, {})) as app:
            source = app.sources[0]
            assert isinstance(source, OpcUaCollectorSource)
            assert await wait_until(lambda: source.health.up, 30), source.health.last_error
            assert await wait_until(lambda: every_key_has(db_url, site, plant, 3), 30)

            assert await server.stop() == 0    # the PLC restarts: its history is gone
            assert await wait_until(lambda: not source.health.up, 20)
            restarted = datetime.now(UTC)
            await server.start()               # same port, same certificate, a new process
            assert await wait_until(lambda: source.health.up, 30), source.health.last_error
            assert await wait_until(
                lambda: every_key_has(db_url, site, plant, 5, after=restarted), 30)
            assert source.health.up

    assert source.sessions_opened >= 2 and source.health.reconnects >= 1
    assert not collector_errors(caplog)
    assert await rows(db_url, "select count(*) from dead_letters") == [(0,)]


async def test_sign_and_encrypt_with_node_opcua_pki_both_ways(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    options = collector_options(db_url, tmp_path, {SOURCE}, {})
    pki = Pki(options.opcua.pki_dir)
    own = pki.own_certificate()  # node-opcua trusts the collector's certificate, nothing else
    async with node_opcua_server(tmp_path, security="sign_encrypt",
                                 trust_client=own.cert_path) as server:
        plant, site = interop_plant(server.endpoint, security="sign_encrypt")
        async with CollectorApp(plant, options) as app:
            source = app.sources[0]
            assert isinstance(source, OpcUaCollectorSource)
            # the collector refuses the server until its certificate is trusted
            assert await wait_until(lambda: "not trusted" in source.health.last_error, 30), \
                source.health.last_error
            assert not source.health.up and source.sessions_opened == 0
            assert server.cert_path is not None
            pki.trust(str(server.cert_path))
            assert await wait_until(lambda: source.health.up, 30), source.health.last_error
            assert await wait_until(lambda: every_key_has(db_url, site, plant, 5), 30)
        offered = await Client(server.endpoint).connect_and_get_server_endpoints()

    # the only endpoint the server offers is Basic256Sha256 SignAndEncrypt
    assert {(e.SecurityPolicyUri.rsplit("#", 1)[1], e.SecurityMode) for e in offered} == {
        ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)}
    assert not collector_errors(caplog)
