"""OPC UA ingest: the collector's stored samples/s against a bare asyncua client on the same
servers in the same run, end-to-end latency at a steady 10k samples/s, and peak RSS.

    .venv/bin/python bench/ingest_opcua.py [--items 10000] [--servers 4] [--publishing-ms 250]
        [--warmup 10] [--window 20] [--rounds 1] [--ramp-start 10000] [--ramp-step 2500]
        [--step-window 10] [--refine 2] [--skip-handler] [--skip-flat] [--skip-ramp]
        [--probe] [--profile-s N] [--keep-logs]

Set-up: a generated plant model (reduction furnaces of up to 200 retorts, addresses from the
default `{asset}.{signal}` template as the simulated PLCs name their nodes) with `--items`
variables split over `--servers` OPC UA server processes (bench/opcua_server_proc.py:
`simulators.opcua.OpcUaDevice`, one process each: one asyncua server tops out near 13-15k
values/s). Each server writes its variables round-robin, values inside the catalogue's
physical range, the wall-clock time of the write as source timestamp. A scratch database is
created, migrated and dropped here; children die with the bench (stdin closed, SIGTERM, and
PR_SET_PDEATHSIG).

Clients, one at a time, each subscribed to every variable with the same subscription and
monitored-item parameters:
- the baseline, "bare asyncua client, bulk" (bench/opcua_bare_client.py): one process, one
  asyncua `Client` per server, a `Subscription` whose publish_callback only counts the items
  of each publish response — asyncua's transport, decoding and publish loop, nothing else;
- "bare asyncua client, handler" (flat-out run only, for reference): asyncua's documented
  handler API, `datachange_notification` counts (asyncua runs each notification in a task);
- the collector: `smeltwatch collect --plant FILE --metrics-port 0` in its own process (only
  OPC UA sources), its samples/s = rows of `samples` whose ingest_time falls in the window.

1. Flat out: the servers write as fast as they can for `--warmup` + `--window` s. Ratio =
   collector stored/s ÷ bare client notifications/s (target ≥ 0.80). On two cores the four
   servers, the client and PostgreSQL share the CPU (the kernel gives the client about one
   runnable process's share), so this is the whole machine's figure.
2. Paced: the servers' total rate steps up from `--ramp-start` by `--ramp-step` (then
   `--refine` finer steps after the first miss) until the client stops keeping up (servers
   short of the rate, client receiving < 95 %, the collector's queue growing or dropping, or
   < 90 % stored); "highest paced rate held" per client and their ratio.
3. Latency: the collector's first paced step (`--ramp-start`, 10,000/s, `--warmup` and
   `--window`): percentile_cont(0.5 / 0.99) of ingest_time − time over the rows stored in the
   window (ingest_time is the writing transaction's now(), time the server's source
   timestamp); target p99 < 1 s. The publishing interval is a floor: a value waits up to one
   interval on the server, then up to 0.2 s (batch_max_wait_s) in the collector.
4. Peak RSS: VmHWM of the collector's process at the end of each window (target < 300 MB).

Columns: cores = the client process's CPU, µs/value = its CPU per value stored (collector) or
counted (bare client), pg = the scratch database's backends, machine = every CPU's busy time,
others = machine minus the servers, the client and pg (other work on the box: noise), all in
cores over the window.

The collector runs with the plant's publishing interval (`--publishing-ms`), sampling
interval 0 (asyncua servers report every write whatever the interval), queue size
`--queue-size`, history backfill off (the bench servers keep none) and otherwise its defaults
(batches of up to 5,000 readings or 0.2 s). Diagnostics: `--probe` runs the collector
in-process with timing wrappers instead (bench/opcua_collector_probe.py: decode, callback,
writes, loop lag, GC pauses); `--probe-gc T0,T1,T2` / `--probe-gc-freeze` try GC settings in
it; `--profile-s N` samples the collector with py-spy for N s of its first window (py-spy must
be in the venv; the bench never installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.store import migrate

REPO = Path(__file__).resolve().parent.parent
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PYTHON = str(REPO / ".venv" / "bin" / "python")
SMELTWATCH = str(REPO / ".venv" / "bin" / "smeltwatch")
NAMESPACE = "urn:smeltwatch:bench"
FULL_FURNACE = 4 + 20 + 4 * 40 + 4 * 200  # signals of a 20-zone, 40-pair, 200-retort furnace


# --- the plant --------------------------------------------------------------------------------

def furnaces_for(n_items: int) -> list[tuple[int, int, int]]:
    """(retorts, zones, burner pairs) of reduction furnaces with about n_items signals (4 per
    furnace, 1 per zone, 4 per burner pair, 4 per retort; never fewer than asked)."""
    out, left = [], n_items
    while left > 0:
        if left >= FULL_FURNACE:
            out.append((200, 20, 40))
            left -= FULL_FURNACE
        elif left >= 4 + 20 + 160 + 4:
            out.append((math.ceil((left - 184) / 4), 20, 40))
            left = 0
        else:
            out.append((max(1, math.ceil((left - 9) / 4)), 1, 1))
            left = 0
    return out


def plant_yaml(site: str, ports: list[int], items_per_server: int, publishing_ms: float,
               queue_size: int) -> str:
    lines = [f"site: {{id: {site}, name: {{en: OPC UA ingest bench, zh: 基准}}, "
             "shifts: [{name: day, start: '00:00'}]}", "sources:"]
    for i, port in enumerate(ports, start=1):
        lines.append(f"  - {{id: bench-plc-{i}, protocol: opcua, endpoint: "
                     f"'opc.tcp://127.0.0.1:{port}', namespace: '{NAMESPACE}', "
                     f"publishing_interval_ms: {publishing_ms}, sampling_interval_ms: 0, "
                     f"queue_size: {queue_size}}}")
    lines += ["areas:", "  - id: reduction", "    stage: reduction", "    equipment:"]
    for i in range(1, len(ports) + 1):
        for k, (retorts, zones, pairs) in enumerate(furnaces_for(items_per_server), start=1):
            lines.append(f"      - {{id: furnace-{i}-{k}, kind: reduction_furnace, "
                         f"source: bench-plc-{i}, retorts: {retorts}, zones: {zones}, "
                         f"burner_pairs: {pairs}, cycle_h: 20, retort_output_t_per_cycle: 0.2, "
                         "reversal_period_s: 60}")
    return "\n".join(lines) + "\n"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


# --- child processes --------------------------------------------------------------------------

def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the bench dies, even by SIGKILL."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    reports: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ready_value: int = 0
    watch: Callable[[Child, str], None] | None = None
    ends_on_stdin: bool = True
    pump: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            async for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                log.write(line + "\n")
                if line.startswith("{"):
                    data = json.loads(line)
                    if "ready" in data:
                        self.ready_value = int(data["ready"])
                        self.ready.set()
                    else:
                        self.reports.append(data)
                else:
                    self.log_lines.append(line)
                    if self.watch is not None:
                        self.watch(self, line)

    def rate(self, key: str, t0: float, t1: float) -> float:
        """Per second of `key` between the first report at/after t0 and the last at/before t1."""
        inside = [r for r in self.reports if t0 <= r["t"] <= t1]
        if len(inside) < 2:
            return float("nan")
        a, b = inside[0], inside[-1]
        return float(b[key] - a[key]) / float(b["t"] - a["t"])

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.log_path.read_text(encoding="utf-8").splitlines()[-n:])

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Close stdin (the bench's helpers end on it), SIGTERM (the collector flushes and
        stops), then SIGKILL."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            if self.ends_on_stdin:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 5)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), timeout_s)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self.pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pump, 5)


CHILDREN: list[Child] = []


async def spawn(name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None,
                watch: Callable[[Child, str], None] | None = None,
                ends_on_stdin: bool = True) -> Child:
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env, cwd=str(REPO),
        preexec_fn=_die_with_parent, limit=2**20)
    child = Child(name, proc, log_dir / f"{name}.log", watch=watch, ends_on_stdin=ends_on_stdin)
    CHILDREN.append(child)
    child.pump = asyncio.create_task(child._pump())
    return child


async def wait_ready(child: Child, timeout_s: float) -> None:
    done = asyncio.create_task(child.ready.wait())
    exited = asyncio.create_task(child.proc.wait())
    finished, _ = await asyncio.wait([done, exited], timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
    done.cancel()
    exited.cancel()
    if not child.ready.is_set():
        why = "exited" if exited in finished else f"not ready after {timeout_s:.0f} s"
        raise RuntimeError(f"{child.name} {why}; its log ends:\n{child.tail()}")


def proc_status(pid: int, key: str) -> int:
    """A kB figure of /proc/<pid>/status (VmHWM: peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, all jiffies) of every CPU since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def postgres_seconds(db_name: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to the scratch database."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if db_name.encode() in cmdline and cmdline.startswith(b"postgres"):
                total += cpu_seconds(int(proc.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def our_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(pid)
    return total


DB_NAME = ""  # the scratch database, for its backends' CPU


# --- measuring --------------------------------------------------------------------------------

@dataclass
class Run:
    kind: str
    target: float = 0.0                # paced rate asked of the servers (0: flat out)
    offered: float = float("nan")      # server writes/s in the window
    received: float = float("nan")     # notifications/s the client counted
    stored: float = float("nan")       # collector: rows/s with ingest_time in the window
    cores: float = float("nan")        # the client process's CPU, in cores
    machine: float = float("nan")      # the whole machine's CPU busy, in cores
    pg: float = float("nan")           # the scratch database's backends, in cores
    others: float = float("nan")       # everything not started by this bench, in cores
    p50: float = float("nan")
    p99: float = float("nan")
    pmax: float = float("nan")
    rss_mb: float = float("nan")
    dropped: float = 0.0               # readings the collector dropped in the window
    queue_growth: float = 0.0          # readings its queue grew by in the window
    queue_end: float = 0.0
    seconds: float = 0.0
    probe: dict[str, float] = field(default_factory=dict)  # --probe: loop and writer timings

    @property
    def got(self) -> float:
        """What the client made of the notifications: stored rows, or counted notifications."""
        return self.stored if self.stored == self.stored else self.received

    def held(self) -> tuple[bool, str]:
        """Did the client keep up with the paced rate? (False, why) if not. Stored rows are
        counted per write (up to 5,000 rows), so that count gets a wider margin; the
        collector's queue not growing is what says it keeps up."""
        if self.offered < 0.95 * self.target:
            return False, f"servers wrote only {self.offered:,.0f}/s"
        if self.received < 0.95 * self.offered:
            return False, f"client received only {self.received:,.0f} of {self.offered:,.0f}/s"
        if self.dropped or self.queue_growth > 0.05 * self.offered * self.seconds:
            return False, (f"queue grew by {self.queue_growth:,.0f} readings, "
                           f"{self.dropped:,.0f} dropped")
        if self.stored == self.stored and self.stored < 0.93 * self.offered:
            return False, f"stored only {self.stored:,.0f} of {self.offered:,.0f}/s"
        return True, ""


class Client:
    kind = ""

    def __init__(self, plant: Path, log_dir: Path, tag: str) -> None:
        self.plant, self.log_dir, self.tag = plant, log_dir, tag
        self.child: Child | None = None

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.proc.pid

    async def start(self) -> int:
        raise NotImplementedError

    async def edge(self) -> None:
        """At the start and at the end of a window."""

    async def backlog(self) -> float:
        """Readings received and not yet handled."""
        return 0.0

    async def finish(self, run: Run, t0: float, t1: float) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.stop(60)


class BareClient(Client):
    def __init__(self, plant: Path, log_dir: Path, tag: str, mode: str) -> None:
        super().__init__(plant, log_dir, tag)
        self.mode = mode
        self.kind = f"bare asyncua client, {mode}"

    async def start(self) -> int:
        self.child = await spawn(f"bare-{self.mode}-{self.tag}", [
            PYTHON, str(REPO / "bench" / "opcua_bare_client.py"), "--plant", str(self.plant),
            "--mode", self.mode, "--report-s", "0.5"], self.log_dir)
        await wait_ready(self.child, 120)
        return self.child.ready_value

    async def finish(self, run: Run, t0: float, t1: float) -> None:
        assert self.child is not None
        run.received = self.child.rate("n", t0, t1 + 0.6)
        run.rss_mb = proc_status(self.pid, "VmHWM") / 1024


class CollectorClient(Client):
    kind = "collector (smeltwatch collect)"

    def __init__(self, plant: Path, log_dir: Path, tag: str, db_url: str, n_sources: int,
                 profile_s: float = 0.0, probe: bool = False,
                 probe_args: list[str] | None = None) -> None:
        super().__init__(plant, log_dir, tag)
        self.db_url, self.n_sources, self.profile_s = db_url, n_sources, profile_s
        self.probe, self.probe_args = probe, probe_args or []
        self.port = 0
        self.scrapes: list[tuple[float, dict[str, float]]] = []
        self.profile: asyncio.subprocess.Process | None = None

    async def start(self) -> int:
        connected: list[int] = []

        def watch(child: Child, line: str) -> None:
            if m := re.search(r"OPC UA source \S+ connected to .*: (\d+) monitored items", line):
                connected.append(int(m.group(1)))
                if len(connected) == self.n_sources:
                    child.ready_value = sum(connected)
                    child.ready.set()
            elif m := re.search(r"telemetry on http://[\d.]+:(\d+)", line):
                self.port = int(m.group(1))

        env = dict(os.environ, SMELTWATCH_DATABASE_URL=self.db_url,
                   SMELTWATCH_SPOOL_DIR=str(self.log_dir / f"spool-{self.tag}"),
                   SMELTWATCH_OPCUA_PKI_DIR=str(self.log_dir / "pki"),
                   SMELTWATCH_OPCUA_BACKFILL_MAX_S="0")
        command = [PYTHON, str(REPO / "bench" / "opcua_collector_probe.py"), "--plant",
                   str(self.plant), "--report-s", "0.5", *self.probe_args] if self.probe else \
            [SMELTWATCH, "collect", "--plant", str(self.plant), "--metrics-port", "0"]
        self.child = await spawn(f"collector-{self.tag}", command, self.log_dir, env, watch,
                                 ends_on_stdin=False)
        await wait_ready(self.child, 180)
        return self.child.ready_value

    async def edge(self) -> None:
        asked = time.time()
        metrics = await scrape(self.port)  # answered once the collector's loop gets to it
        self.scrapes.append(((asked + time.time()) / 2, metrics))
        if self.profile_s > 0 and self.profile is None:
            self.profile = await start_profile(self.pid, self.profile_s, self.log_dir)

    async def backlog(self) -> float:
        return (await scrape(self.port)).get("smeltwatch_queue_readings", 0.0)

    async def finish(self, run: Run, t0: float, t1: float) -> None:
        (s0, before), (s1, after) = self.scrapes[-2:]
        # notifications the collector's OPC UA sources turned into readings, per second
        key = "smeltwatch_source_readings_total"
        run.received = (after[key] - before[key]) / (s1 - s0)
        key = "smeltwatch_readings_dropped_total"
        run.dropped = after.get(key, 0.0) - before.get(key, 0.0)
        key = "smeltwatch_queue_readings"
        run.queue_growth = after.get(key, 0.0) - before.get(key, 0.0)
        run.queue_end = after.get(key, 0.0)
        run.rss_mb = proc_status(self.pid, "VmHWM") / 1024
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            row = await (await conn.execute(
                "select count(*), percentile_cont(array[0.5, 0.99]) within group "
                "(order by extract(epoch from ingest_time - time)), "
                "max(extract(epoch from ingest_time - time)) from samples "
                "where ingest_time >= to_timestamp(%s) and ingest_time < to_timestamp(%s)",
                (t0, t1))).fetchone()
        assert row is not None
        run.stored = int(row[0]) / (t1 - t0)
        if row[1] is not None:
            run.p50, run.p99, run.pmax = float(row[1][0]), float(row[1][1]), float(row[2])
        assert self.child is not None
        probes = [r["probe"] for r in self.child.reports if "probe" in r and t0 < r["t"] <= t1]
        if probes:
            total = {k: sum(p[k] for p in probes) for k in (
                "dt", "decode_s", "responses", "notifications", "on_items_s", "writes",
                "write_s", "rows", "lag_n", "gc_s", "gc_full")}
            span = total["dt"]
            run.probe = {
                "gc": total["gc_s"] / span,
                "gc_max": max(p["gc_max"] for p in probes),
                "gc_full_s": total["gc_full"] / span,
                "decode": total["decode_s"] / span,
                "on_items": total["on_items_s"] / span,
                "write_busy": total["write_s"] / span,
                "writes_s": total["writes"] / span,
                "rows_per_write": total["rows"] / max(1.0, total["writes"]),
                "write_mean": total["write_s"] / max(1.0, total["writes"]),
                "write_max": max(p["write_max"] for p in probes),
                "per_response": total["notifications"] / max(1.0, total["responses"]),
                "decode_us": 1e6 * total["decode_s"] / max(1.0, total["notifications"]),
                "on_items_us": 1e6 * total["on_items_s"] / max(1.0, total["notifications"]),
                "lag_p50": statistics.median(p["lag_p50"] for p in probes),
                "lag_p99": max(p["lag_p99"] for p in probes),
                "lag_max": max(p["lag_max"] for p in probes),
            }

    async def stop(self) -> None:
        await super().stop()
        if self.profile is not None:
            await finish_profile(self.profile, self.log_dir)

    def problems(self) -> list[str]:
        lines = self.child.log_lines if self.child else []
        return [line for line in lines if " ERROR " in line or " WARNING " in line]


async def scrape(port: int) -> dict[str, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    body = (await reader.read()).partition(b"\r\n\r\n")[2].decode()
    writer.close()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            out[base] = out.get(base, 0.0) + float(value)
    return out


async def measure(client: Client, servers: list[Child], target: float, warmup_s: float,
                  seconds: float) -> Run:
    """Warm up, then one window: what the servers wrote, what the client made of it, the
    client's CPU and the machine's."""
    run = Run(client.kind, target)
    await asyncio.sleep(warmup_s)
    server_pids = [s.proc.pid for s in servers]
    t0 = time.time()
    cpu0, (busy0, all0) = cpu_seconds(client.pid), machine_busy()
    ours0, pg0 = our_seconds(server_pids), postgres_seconds(DB_NAME)
    await client.edge()
    await asyncio.sleep(max(0.0, seconds - (time.time() - t0)))
    t1 = time.time()
    cpu1, (busy1, all1) = cpu_seconds(client.pid), machine_busy()
    ours1, pg1 = our_seconds(server_pids), postgres_seconds(DB_NAME)
    await client.edge()
    run.seconds = t1 - t0
    run.cores = (cpu1 - cpu0) / (t1 - t0)
    run.machine = (busy1 - busy0) / (all1 - all0) * (os.cpu_count() or 1)
    run.pg = (pg1 - pg0) / (t1 - t0)
    servers_cores = (ours1 - ours0) / (t1 - t0)
    run.others = max(0.0, run.machine - run.cores - run.pg - servers_cores)
    await asyncio.sleep(0.7)  # the reports just after t1
    run.offered = sum(s.rate("writes", t0, t1 + 0.7) for s in servers)
    await client.finish(run, t0, t1)
    return run


async def set_rate(servers: list[Child], total: float) -> None:
    for s in servers:
        assert s.proc.stdin is not None
        s.proc.stdin.write(f"rate {total / len(servers)}\n".encode())
        await s.proc.stdin.drain()


async def flat_out(client: Client, servers: list[Child], args: argparse.Namespace) -> Run:
    await set_rate(servers, 0)
    try:
        await client.start()
        run = await measure(client, servers, 0.0, args.warmup, args.window)
    finally:
        await client.stop()
    print(f"  flat out, {run.kind}: offered {run.offered:,.0f}/s, got {run.got:,.0f}/s",
          flush=True)
    return run


async def ramp(client: Client, servers: list[Child], args: argparse.Namespace) -> list[Run]:
    """Pace the servers from --ramp-start up by --ramp-step until the client falls behind, then
    back to the last rate held and up again in --refine finer steps. The first step (--warmup,
    --window) is also the latency run."""
    steps: list[Run] = []

    async def step(rate: float) -> bool:
        first = not steps
        await set_rate(servers, rate)
        run = await measure(client, servers, rate, args.warmup if first else args.settle,
                            args.window if first else args.step_window)
        steps.append(run)
        held, why = run.held()
        print(f"  paced {rate:,.0f}/s, {run.kind}: offered {run.offered:,.0f}/s, got "
              f"{run.got:,.0f}/s{'' if held else ' — ' + why}", flush=True)
        return held

    rate = args.ramp_start
    await set_rate(servers, rate)
    try:
        await client.start()
        while rate <= args.ramp_max and await step(rate):
            rate += args.ramp_step
        last = rate - args.ramp_step
        if args.refine and steps[-1].held()[0] is False and last >= args.ramp_start:
            await set_rate(servers, last)  # let the backlog drain before going up again
            for _ in range(60):
                if await client.backlog() < 5_000:
                    break
                await asyncio.sleep(1)
            fine = args.ramp_step / (args.refine + 1)
            for k in range(1, args.refine + 1):
                if not await step(last + k * fine):
                    break
    finally:
        await set_rate(servers, 0)
        await client.stop()
    return steps


# --- profiling (py-spy, when installed) ---------------------------------------------------

async def start_profile(pid: int, seconds: float, log_dir: Path
                        ) -> asyncio.subprocess.Process | None:
    spy = shutil.which("py-spy", path=str(REPO / ".venv" / "bin")) or shutil.which("py-spy")
    if spy is None:
        print("(--profile-s: py-spy is not installed; no profile)")
        return None
    return await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
        "--format", "raw", "--output", str(log_dir / "collector.pyspy.txt"), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=_die_with_parent)


async def finish_profile(profile: asyncio.subprocess.Process, log_dir: Path) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(profile.wait(), 60)
    if profile.returncode is None:
        profile.kill()
        await profile.wait()
    path = log_dir / "collector.pyspy.txt"
    if path.exists():
        print_profile(path)


def print_profile(path: Path, top: int = 25) -> None:
    """Self and inclusive share of samples per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \((/[^)]*?)(site-packages/|/work/main/)", " (", f)
                  for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
    print(f"\nprofile of the collector (py-spy, {total} samples while on CPU):")
    print("  self %   incl %  function (file:line)")
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / total:6.1f}  {100 * inclusive[f] / total:6.1f}  {f}")
    print("  -- by inclusive share --")
    for f, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * own.get(f, 0) / total:6.1f}  {100 * n / total:6.1f}  {f}")


# --- report -----------------------------------------------------------------------------------

def fmt(v: float, spec: str = ",.0f") -> str:
    return "—" if v != v else format(v, spec)  # NaN: not measured


def median_run(runs: list[Run]) -> Run:
    m = Run(runs[0].kind, runs[0].target)
    for attr in ("offered", "received", "stored", "cores", "machine", "pg", "others", "rss_mb",
                 "dropped"):
        setattr(m, attr, statistics.median(getattr(r, attr) for r in runs))
    return m


def print_table(args: argparse.Namespace, items: int, flat: list[Run],
                ramps: dict[str, list[Run]], collector_notes: list[str], command: str,
                load: tuple[float, float, float]) -> None:
    print(f"\n$ {command}")
    print(f"{items:,} monitored items on {args.servers} server processes; publishing "
          f"{args.publishing_ms:g} ms, sampling 0, queue {args.queue_size}; "
          f"{os.cpu_count()} cores; load average before {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    head = (f"  {'client':32s} {'offered/s':>10s} {'received/s':>10s} {'stored/s':>9s} "
            f"{'vs bare':>7s} {'cores':>5s} {'µs/value':>8s} {'pg':>4s} {'machine':>7s} "
            f"{'others':>6s} {'RSS MB':>6s}")

    def line(r: Run, base: float) -> str:
        return (f"  {r.kind:32s} {fmt(r.offered):>10s} {fmt(r.received):>10s} "
                f"{fmt(r.stored):>9s} {fmt(r.got / base, '.2f'):>7s} {fmt(r.cores, '.2f'):>5s} "
                f"{fmt(r.cores * 1e6 / r.got, '.1f'):>8s} {fmt(r.pg, '.2f'):>4s} "
                f"{fmt(r.machine, '.2f'):>7s} {fmt(r.others, '.2f'):>6s} "
                f"{fmt(r.rss_mb, '.0f'):>6s}")

    col_kind = CollectorClient.kind
    if flat:
        print(f"\n1. servers writing flat out (warm-up {args.warmup:g} s, window "
              f"{args.window:g} s, median of {args.rounds}):")
        print(head)
        kinds = list(dict.fromkeys(r.kind for r in flat))
        med = {k: median_run([r for r in flat if r.kind == k]) for k in kinds}
        base = med["bare asyncua client, bulk"].received
        for m in med.values():
            print(line(m, base))
        if col_kind in med:
            ratio = med[col_kind].stored / base
            print(f"  ratio, collector stored/s ÷ bare client notifications/s: {ratio:.2f} "
                  f"(target ≥ 0.80: {'met' if ratio >= 0.8 else 'NOT met'})")
    if ramps:
        print(f"\n2. servers paced from {args.ramp_start:,.0f}/s up by {args.ramp_step:,.0f}/s "
              f"until the client falls behind (settle {args.settle:g} s, window "
              f"{args.step_window:g} s per step):")
        print(f"  {'client':32s} {'highest paced rate held':>23s}  next step up, missed")
        sustained: dict[str, float] = {}
        for kind, steps in ramps.items():
            held = [r for r in steps if r.held()[0]]
            best = max((r.target for r in held), default=0.0)
            sustained[kind] = best
            missed = min((r for r in steps if not r.held()[0] and r.target > best),
                         key=lambda r: r.target, default=None)
            why = "none" if missed is None else f"{missed.target:,.0f}/s: {missed.held()[1]}"
            print(f"  {kind:32s} {best:>21,.0f}/s  {why}")
        base_kind = "bare asyncua client, bulk"
        if base_kind in sustained and col_kind in sustained and sustained[base_kind]:
            ratio = sustained[col_kind] / sustained[base_kind]
            print(f"  ratio, collector ÷ bare client, highest paced rate held: {ratio:.2f} "
                  f"(target ≥ 0.80: {'met' if ratio >= 0.8 else 'NOT met'})")
        print("  every step:")
        print(head.replace("client  ", "client, paced"))
        for kind, steps in ramps.items():
            short = "bare client, bulk" if kind == base_kind else "collector"
            for r in steps:
                # vs bare: against what the bare client took at the same paced rate
                same = [b for b in ramps.get(base_kind, []) if b.target == r.target]
                base = same[0].got if same else float("nan")
                print(line(replace(r, kind=f"{short} @ {r.target:,.0f}/s"), base))
        if col_kind in ramps:
            lat = ramps[col_kind][0]
            print(f"\n3. latency at a steady {lat.target:,.0f}/s (the collector's first step, "
                  f"{args.window:g} s window): offered {lat.offered:,.0f}/s, stored "
                  f"{lat.stored:,.0f}/s")
            print(f"  ingest_time − source time: p50 {lat.p50:.3f} s, p99 {lat.p99:.3f} s, "
                  f"max {lat.pmax:.3f} s (target p99 < 1 s: "
                  f"{'met' if lat.p99 < 1 else 'NOT met'})")
    rss = [(r.target, r.rss_mb) for r in [*flat, *ramps.get(col_kind, [])]
           if r.kind == col_kind]
    if rss:
        peak = max(x for _, x in rss)
        print("\n4. collector peak RSS (VmHWM at the end of each window): "
              + ", ".join(f"{x:.0f} MB ({'flat out' if t == 0 else f'{t:,.0f}/s'})"
                          for t, x in rss)
              + f" — target < 300 MB: {'met' if peak < 300 else 'NOT met'}")
    probed = [(f"flat out #{i}", r) for i, r in enumerate(
        (r for r in flat if r.kind == col_kind and r.probe), start=1)]
    probed += [(f"paced {r.target:,.0f}/s", r) for r in ramps.get(col_kind, []) if r.probe]
    if probed:
        print("\n5. inside the collector (--probe: in-process, timing wrappers around asyncua's "
              "publish decode, the source's publish callback and StoreWriter.write):")
        print(f"  {'run':16s} {'decode':>6s} {'callback':>8s} {'µs/value':>9s} "
              f"{'values/resp':>11s} {'writes/s':>8s} {'rows/write':>10s} {'write ms':>8s} "
              f"{'max':>5s} {'write busy':>10s} {'loop lag p50/p99/max ms':>23s} "
              f"{'gc':>4s} {'gc max ms':>9s} {'full gc/s':>9s}")
        for label, r in probed:
            q = r.probe
            print(f"  {label:16s} {q['decode']:6.0%} {q['on_items']:8.0%} "
                  f"{q['decode_us']:4.1f}+{q['on_items_us']:4.1f} {q['per_response']:11,.0f} "
                  f"{q['writes_s']:8.1f} {q['rows_per_write']:10,.0f} "
                  f"{1e3 * q['write_mean']:8.0f} {1e3 * q['write_max']:5.0f} "
                  f"{q['write_busy']:10.0%} {1e3 * q['lag_p50']:7.1f} /{1e3 * q['lag_p99']:6.0f} "
                  f"/{1e3 * q['lag_max']:6.0f} {q['gc']:4.0%} {1e3 * q['gc_max']:9.0f} "
                  f"{q['gc_full_s']:9.2f}")
        print("  decode, callback: CPU seconds per wall second the event loop spent decoding "
              "publish responses and in the source's callback; µs/value: their CPU per value; "
              "write ms: wall time of one StoreWriter.write; write busy: share of wall time a "
              "write was in flight; gc: share of wall time in the cyclic GC, its longest pause "
              "and full (generation 2) collections a second")
    if collector_notes:
        print("\ncollector warnings and errors (first 6):")
        for note in collector_notes[:6]:
            print(f"  {note}")


# --- main -------------------------------------------------------------------------------------

async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--publishing-ms", type=float, default=250.0)
    parser.add_argument("--queue-size", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1, help="of the flat-out runs")
    parser.add_argument("--ramp-start", type=float, default=10_000.0,
                        help="first paced rate: also the latency run's rate")
    parser.add_argument("--ramp-step", type=float, default=2_500.0)
    parser.add_argument("--ramp-max", type=float, default=30_000.0)
    parser.add_argument("--refine", type=int, default=2,
                        help="finer steps between the last rate held and the first missed")
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument("--step-window", type=float, default=10.0)
    parser.add_argument("--skip-flat", action="store_true")
    parser.add_argument("--skip-handler", action="store_true")
    parser.add_argument("--skip-ramp", action="store_true")
    parser.add_argument("--skip-bare-ramp", action="store_true")
    parser.add_argument("--profile-s", type=float, default=0.0,
                        help="py-spy the flat-out collector (with --skip-flat: the first "
                             "paced step's) for this many seconds")
    parser.add_argument("--probe", action="store_true",
                        help="run the collector in-process with timing probes "
                             "(bench/opcua_collector_probe.py) instead of `smeltwatch collect`")
    parser.add_argument("--probe-gc", default="", metavar="T0,T1,T2",
                        help="an experiment (implies --probe): gc.set_threshold(T0, T1, T2) in "
                             "the collector")
    parser.add_argument("--probe-gc-freeze", action="store_true",
                        help="an experiment (implies --probe): gc.freeze() once the collector "
                             "is built")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python", "bench/ingest_opcua.py", *sys.argv[1:]])
    load = os.getloadavg()
    # Ctrl-C or SIGTERM: cancel, so the finally below stops every child and drops the database
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)

    log_dir = Path(tempfile.mkdtemp(prefix="ingest-opcua-"))
    global DB_NAME
    name = DB_NAME = f"smeltwatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    db_url = psycopg.conninfo.make_conninfo(ADMIN, dbname=name)
    try:
        await migrate(db_url)
        ports = free_ports(args.servers)
        plant = log_dir / "plant.yaml"
        plant.write_text(plant_yaml(f"bench-{uuid.uuid4().hex[:6]}", ports,
                                    math.ceil(args.items / args.servers), args.publishing_ms,
                                    args.queue_size), encoding="utf-8")
        started = time.monotonic()
        servers = [await spawn(f"server-{i}", [
            PYTHON, str(REPO / "bench" / "opcua_server_proc.py"), "--plant", str(plant),
            "--source", f"bench-plc-{i}", "--port", str(port), "--rate", "0",
            "--report-s", "0.5"], log_dir) for i, port in enumerate(ports, start=1)]
        for s in servers:
            await wait_ready(s, 300)
        items = sum(s.ready_value for s in servers)
        print(f"{len(servers)} servers with {items:,} variables up in "
              f"{time.monotonic() - started:.0f} s (logs in {log_dir})", flush=True)

        probe_args = (["--gc", args.probe_gc] if args.probe_gc else []) + \
            (["--gc-freeze"] if args.probe_gc_freeze else [])

        def new_collector(tag: str, profile_s: float = 0.0) -> CollectorClient:
            return CollectorClient(plant, log_dir, tag, db_url, len(servers), profile_s,
                                   args.probe or bool(probe_args), probe_args)

        flat: list[Run] = []
        notes: list[str] = []
        for n in range(0 if args.skip_flat else args.rounds):
            flat.append(await flat_out(BareClient(plant, log_dir, f"flat{n}", "bulk"),
                                       servers, args))
            if not args.skip_handler:
                flat.append(await flat_out(BareClient(plant, log_dir, f"flat{n}", "handler"),
                                           servers, args))
            client = new_collector(f"flat{n}", args.profile_s if n == 0 else 0.0)
            flat.append(await flat_out(client, servers, args))
            notes += client.problems()
        ramps: dict[str, list[Run]] = {}
        if not args.skip_ramp:
            if not args.skip_bare_ramp:
                bare = BareClient(plant, log_dir, "ramp", "bulk")
                ramps[bare.kind] = await ramp(bare, servers, args)
            client = new_collector("ramp", args.profile_s if args.skip_flat else 0.0)
            ramps[client.kind] = await ramp(client, servers, args)
            notes += client.problems()
        print_table(args, items, flat, ramps, notes, command, load)
    except asyncio.CancelledError:
        print("\ninterrupted: stopping the servers and clients, dropping the database",
              flush=True)
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await asyncio.gather(*(c.stop() for c in CHILDREN), return_exceptions=True)
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')
        if args.keep_logs:
            print(f"logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())
