"""`smeltwatch demo`: the whole stack on this machine — the database migrated, the simulated
plant (its PLCs and meters as separate processes, accelerated), the collector — with a status
line while it runs, until Ctrl-C. Each part runs as its own `smeltwatch` process, as in a
plant; their logs go to `.smeltwatch/demo/`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import typer

from collector.contracts import Plant

LOG_DIR = Path(".smeltwatch/demo")
METRICS_PORT = 9464


def smeltwatch() -> str:
    here = Path(sys.argv[0])
    return str(here) if here.name == "smeltwatch" else "smeltwatch"


def start_stack(scenario: str, speed: float, plant_file: str) -> list[subprocess.Popen[bytes]]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SMELTWATCH_COLLECTOR_METRICS_PORT": str(METRICS_PORT)}
    parts = {
        # the collector first: it is subscribed when the plant starts sending
        "collector": [smeltwatch(), "collect", "--plant", plant_file],
        "simulator": [smeltwatch(), "sim", "run", scenario, "--speed", f"{speed:g}",
                      "--start-delay", "5"],
    }
    processes = []
    for name, command in parts.items():
        log = (LOG_DIR / f"{name}.log").open("ab")
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True))
        typer.echo(f"started {name}: {' '.join(command[1:])}  (log: {LOG_DIR / name}.log)")
    return processes


def stop_stack(processes: list[subprocess.Popen[bytes]]) -> None:
    """The simulator first, then the collector (SIGTERM: it flushes its queue and stops)."""
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGINT if process is processes[-1] else signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def status_line(url: str, site: str) -> str:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute(
                "select (select count(*) from samples s join tags t using (tag_id) "
                "where t.asset like %s), (select count(*) from events), "
                "(select count(*) from dead_letters)", (f"{site}/%",)).fetchone()
        samples, events, letters = row if row else (0, 0, 0)
    except psycopg.Error as exc:
        return f"database: {str(exc).splitlines()[0]}"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/health",
                                    timeout=3) as response:
            health = json.load(response)
        up = sum(1 for s in health["sources"] if s["up"])
        collector = (f"collector {health['status']}, {up}/{len(health['sources'])} sources "
                     f"up, spool {health['spool']['readings']} readings")
    except OSError:
        collector = "collector not answering yet"
    return (f"{time.strftime('%H:%M:%S')}  samples {samples:,}  events {events:,}  "
            f"dead letters {letters:,}  |  {collector}")


def run_demo(plant: Plant, plant_file: str, url: str, scenario: str, speed: float,
             seconds: float | None) -> None:
    processes = start_stack(scenario, speed, plant_file)
    typer.echo(
        f"\nThe simulated plant runs {speed:g}x real time: ≈ {len(plant.bindings()):,} values "
        f"a simulated minute, so ≈ {len(plant.bindings()) * speed / 60:,.0f} samples/s into "
        f"TimescaleDB once it is going.\nOpen http://127.0.0.1:{METRICS_PORT}/health and "
        f"/metrics; query the database with: psql '{url}'\nCtrl-C stops everything.\n")
    started = time.monotonic()
    try:
        while seconds is None or time.monotonic() - started < seconds:
            time.sleep(min(10.0, seconds or 10.0))
            typer.echo(status_line(url, plant.site.id))
            if any(p.poll() not in (None, 0) for p in processes):
                typer.echo(f"a part of the stack stopped; see {LOG_DIR}/", err=True)
                break
    except KeyboardInterrupt:
        typer.echo("\nstopping…")
    finally:
        stop_stack(processes)
    typer.echo("stopped: " + status_line(url, plant.site.id).split("  |")[0])
