"""The collector with timing probes, for bench/ingest_opcua.py --probe (not run on its own).

    .venv/bin/python bench/opcua_collector_probe.py --plant FILE

`CollectorApp` exactly as `smeltwatch collect` builds it (settings from the same SMELTWATCH_*
environment variables, the same log lines), with these measured from outside the collector's
code (wrappers installed at start, nothing in collector/ changed):

- decode: asyncua's `struct_from_binary(PublishResponse, …)` in the session's publish loop —
  CPU seconds (thread time), responses, notifications;
- on_items: `BulkSubscription.publish_callback` (the source's `_on_items`: to_reading per
  value, then `pipeline.offer`) — CPU seconds;
- write: `StoreWriter.write` (one transaction of up to 5,000 readings) — wall seconds per call
  (including every wait for the event loop between its round trips), rows;
- loop lag: how late a task that sleeps 5 ms wakes up — how long the loop is busy elsewhere;
- gc: the cyclic garbage collector's pauses (wall), via `gc.callbacks`.

stdout: {"t": unix time, "probe": {...}} every `--report-s` with the figures since the last
report. Ends on SIGTERM/SIGINT like the CLI (queue flushed).

`--gc T0,T1,T2` sets `gc.set_threshold` and `--gc-freeze` calls `gc.freeze()` once the
collector is built: experiments for what a change in the collector would give.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncua.client.ua_session as ua_session
from asyncua import ua

from collector.collect import CollectOptions, CollectorApp
from collector.contracts import load_plant
from collector.logs import configure_logging
from collector.sources.opcua.bulk_subscription import BulkSubscription
from collector.store import StoreWriter


class Probe:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.since = time.perf_counter()
        self.gc_s = 0.0
        self.gc_max = 0.0
        self.gc_full = 0
        self.decode_s = 0.0
        self.responses = 0
        self.notifications = 0
        self.on_items_s = 0.0
        self.write_wall: list[float] = []
        self.rows = 0
        self.lags: list[float] = []

    def report(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float:
            if not values:
                return 0.0
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        out = {"dt": time.perf_counter() - self.since, "gc_s": self.gc_s, "gc_max": self.gc_max,
               "gc_full": self.gc_full, "decode_s": self.decode_s, "responses": self.responses,
               "notifications": self.notifications, "on_items_s": self.on_items_s,
               "writes": len(self.write_wall), "write_s": sum(self.write_wall),
               "write_p50": pct(self.write_wall, 0.5), "write_max": max(self.write_wall,
                                                                        default=0.0),
               "rows": self.rows, "lag_p50": pct(self.lags, 0.5), "lag_p99": pct(self.lags, 0.99),
               "lag_max": max(self.lags, default=0.0), "lag_n": len(self.lags)}
        self.reset()
        return out


PROBE = Probe()


def install() -> None:
    decode = ua_session.struct_from_binary

    def timed_decode(cls: Any, data: Any) -> Any:
        start = time.thread_time()
        result = decode(cls, data)
        if cls is ua.PublishResponse:
            PROBE.decode_s += time.thread_time() - start
            PROBE.responses += 1
            for n in result.Parameters.NotificationMessage.NotificationData or ():
                if isinstance(n, ua.DataChangeNotification):
                    PROBE.notifications += len(n.MonitoredItems)
        return result

    ua_session.struct_from_binary = timed_decode

    callback = BulkSubscription.publish_callback

    async def timed_callback(self: BulkSubscription, result: ua.PublishResult) -> None:
        start = time.thread_time()
        await callback(self, result)  # never awaits anything (the source must not block)
        PROBE.on_items_s += time.thread_time() - start

    BulkSubscription.publish_callback = timed_callback  # type: ignore[method-assign,assignment]

    write = StoreWriter.write

    async def timed_write(self: StoreWriter, readings: Sequence[Any], *args: Any,
                          **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await write(self, readings, *args, **kwargs)
        finally:
            PROBE.write_wall.append(time.perf_counter() - start)
            PROBE.rows += len(readings)

    StoreWriter.write = timed_write  # type: ignore[method-assign]

    started = [0.0]

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pause = time.perf_counter() - started[0]
            PROBE.gc_s += pause
            PROBE.gc_max = max(PROBE.gc_max, pause)
            PROBE.gc_full += info["generation"] == 2

    gc.callbacks.append(gc_timer)


async def lag_probe() -> None:
    while True:
        start = time.perf_counter()
        await asyncio.sleep(0.005)
        PROBE.lags.append(time.perf_counter() - start - 0.005)


async def reporter(every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        print(json.dumps({"t": time.time(), "probe": PROBE.report()}), flush=True)


async def run(args: argparse.Namespace) -> None:
    options = CollectOptions()
    options.telemetry.metrics_port = 0
    app = CollectorApp(load_plant(args.plant), options)
    if args.gc:
        gc.set_threshold(*(int(x) for x in args.gc.split(",")))
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(lag_probe()), asyncio.create_task(reporter(args.report_s))]
    try:
        await app.run_until(stop)
    finally:
        for task in tasks:
            task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plant", type=Path, required=True)
    parser.add_argument("--report-s", type=float, default=1.0)
    parser.add_argument("--gc", default="", help="gc.set_threshold(T0, T1, T2)")
    parser.add_argument("--gc-freeze", action="store_true")
    args = parser.parse_args()
    configure_logging(logging.INFO)
    install()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
