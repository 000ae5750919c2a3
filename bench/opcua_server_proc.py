"""One simulated OPC UA server process for bench/ingest_opcua.py (not run on its own).

    .venv/bin/python bench/opcua_server_proc.py --plant FILE --source ID --port N [--rate R]

Serves every variable the plant model binds to source ID (`simulators.opcua.OpcUaDevice` with
`simulators.opcua.plc.variable_specs`, history off) on 127.0.0.1:N and writes them
round-robin: R values a second in total (0: as fast as it can, yielding to the server's
publishing between chunks). Each value is inside the signal's physical range (a state signal
cycles through its states) and carries the wall-clock time of the write as its source and
server timestamp, so stored time - source time is the end-to-end latency.

stdout, one JSON object a line: {"ready": items} once serving, then every `--report-s`
{"t": unix time, "writes": total so far, "rate": R}. stdin: `rate R` lines change the rate;
end of input (the bench process gone) stops the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asyncua import ua

from collector.contracts import CATALOGUE, load_plant
from collector.contracts.plant import OpcUaSource
from collector.contracts.signals import SignalKind
from simulators.opcua.device import OpcUaDevice
from simulators.opcua.plc import variable_specs

CHUNK = 100  # writes between yields to the event loop when running flat out


class Writer:
    def __init__(self, device: OpcUaDevice, targets: list[tuple[ua.NodeId, float, float, int]],
                 rate: float) -> None:
        self.device, self.targets, self.rate = device, targets, rate
        self.writes = 0
        self._base_t, self._base_writes = time.monotonic(), 0

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        self._base_t, self._base_writes = time.monotonic(), self.writes

    async def run(self) -> None:
        targets, n = self.targets, len(self.targets)
        write = self.device.write
        good = ua.StatusCode()
        double = ua.VariantType.Double
        i = 0
        while True:
            if self.rate > 0:
                due = self._base_writes + self.rate * (time.monotonic() - self._base_t)
                todo = int(due) - self.writes
                if todo <= 0:
                    await asyncio.sleep(min(0.01, (1 - todo) / self.rate))
                    continue
                if todo > self.rate:  # fell more than a second behind: don't burst
                    self._base_t, self._base_writes = time.monotonic(), self.writes
                    todo = int(self.rate / 100) + 1
                todo = min(todo, CHUNK)
            else:
                todo = CHUNK
            for _ in range(todo):
                node_id, low, span, states = targets[i % n]
                k = i // n
                if states:
                    value = float(k % states)
                else:
                    value = low + span * ((k * 0.0137 + i * 0.000731) % 1.0)
                now = datetime.now(UTC)
                await write(node_id, ua.DataValue(ua.Variant(value, double), StatusCode=good,
                                                  SourceTimestamp=now, ServerTimestamp=now))
                i += 1
            self.writes += todo
            await asyncio.sleep(0)  # let the server answer publish requests


def emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve(args: argparse.Namespace) -> None:
    plant = load_plant(args.plant)
    source = next(s for s in plant.sources if s.id == args.source)
    assert isinstance(source, OpcUaSource)
    specs = [replace(s, historizing=False) for s in variable_specs(plant, source)]
    device = OpcUaDevice(f"opc.tcp://127.0.0.1:{args.port}/", f"bench server {source.id}",
                         f"urn:smeltwatch:bench:{source.id}", specs)
    await device.start()
    targets = []
    for b in plant.bindings():
        if b.source != source.id:
            continue
        signal = CATALOGUE[b.signal]
        low, high = signal.physical_range
        states = len(signal.states) if signal.kind is SignalKind.STATE else 0
        # keep well inside the range: the stored value is raw * factor + offset (1, 0 here)
        targets.append((device.node_ids[(source.namespace, f"s={b.address}")],
                        low + 0.05 * (high - low), 0.9 * (high - low), states))
    writer = Writer(device, targets, args.rate)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def read_stdin() -> None:  # a thread: asyncio pipes on stdin are awkward under Popen
        for line in sys.stdin:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "rate":
                loop.call_soon_threadsafe(writer.set_rate, float(parts[1]))
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_stdin, daemon=True).start()
    emit({"ready": len(targets)})
    task = asyncio.create_task(writer.run())
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.report_s)
            emit({"t": time.time(), "writes": writer.writes, "rate": writer.rate})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(device.stop(), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plant", type=Path, required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="values/s; 0: flat out")
    parser.add_argument("--report-s", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
