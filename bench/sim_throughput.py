"""How fast the simulated plant emits, against the plant model alone in the same process.

    .venv/bin/python bench/sim_throughput.py [--hours 24] [--skip-split]

Each row simulates `--hours` of the normal-month scenario at 60 s sampling at speed 0 (as
fast as possible) on the demo plant and counts the samples that went out:

- model only: `PlantSim` frames, no I/O — the baseline the others are divided by;
- OPC UA: the six PLC servers of the demo plant in this process, every value written (with
  source and server timestamps, status, history);
- OPC UA with a subscriber: one furnace PLC with an asyncua client subscribed to all of its
  nodes, as a collector is — the server's price per subscribed value;
- MQTT batched, demo plant: the plant's MQTT source (meters, LHV, weather, slag yard, events),
  every message acknowledged by the local Mosquitto (QoS 1);
- MQTT batched, every signal: the same plant with all equipment moved onto the MQTT source
  (476 signals), to show what batching moves through one paho client;
- the whole plant split as `smeltwatch sim run` runs it (one process per PLC and one for
  MQTT): the wall time of a simulated day. Target (issue #3): under 60 s.

Each test plant gets its own site id, so a running demo never shares topics with the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asyncua import Client

from collector.contracts import Plant, parse_plant
from simulators.model import PlantSim
from simulators.runner import RunOptions, ScenarioRun, run_scenario
from simulators.scenario import Scenario, load_scenario

REPO = Path(__file__).resolve().parent.parent


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def bench_plant(all_on_mqtt: bool = False) -> Plant:
    text = (REPO / "plants" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("id: yulin-1", f"id: bench-{uuid.uuid4().hex[:8]}", 1)
    if all_on_mqtt:
        text = re.sub(r"source: plc-[a-z0-9-]+", "source: plant-mqtt", text)
    return parse_plant(text)


def model_only(plant: Plant, scenario: Scenario) -> tuple[int, float]:
    started = time.perf_counter()
    samples = sum(len(frame.values) for frame in PlantSim(plant, scenario).frames())
    return samples, time.perf_counter() - started


def opcua_in_process(plant: Plant, scenario: Scenario) -> tuple[int, float]:
    sources = [s.id for s in plant.sources if s.protocol == "opcua"]
    ports = dict(zip(sources, free_ports(len(sources)), strict=True))
    stats = asyncio.run(run_scenario(plant, scenario, RunOptions(
        speed=0, only=set(sources), opcua_ports=ports)))
    return stats.opcua_writes, stats.wall_s


def opcua_with_subscriber(plant: Plant, scenario: Scenario) -> tuple[int, int, float]:
    """One furnace PLC with a client subscribed to every node (what a collector does): the
    server copies each value into the client's monitored items and publishes it."""
    source = "plc-furnace-01"
    port = free_ports(1)[0]

    async def run() -> tuple[int, int, float]:
        received = 0

        class Count:
            def datachange_notification(self, *_: object) -> None:
                nonlocal received
                received += 1

        scenario_run = ScenarioRun(plant, scenario, RunOptions(
            speed=0, only={source}, opcua_ports={source: port}))
        await scenario_run.start()
        try:
            async with Client(f"opc.tcp://127.0.0.1:{port}", timeout=30) as client:
                nodes = [client.get_node(n) for n in scenario_run.servers[0].device.node_ids
                         .values()]
                subscription = await client.create_subscription(100, Count())
                await subscription.subscribe_data_change(nodes, queuesize=100_000)
                first = received
                stats = await scenario_run.play()
                for _ in range(600):  # until the notifications stop coming
                    before = received
                    await asyncio.sleep(0.2)
                    if received == before:
                        break
                wall = stats.wall_s
            return stats.opcua_writes, received - first, wall
        finally:
            await scenario_run.close()

    return asyncio.run(run())


def mqtt_batched(plant: Plant, scenario: Scenario) -> tuple[int, int, float]:
    on_mqtt = {(b.asset, b.signal) for b in plant.bindings() if b.source == "plant-mqtt"}
    values = sum(1 for f in PlantSim(plant, scenario).frames() for v in f.values
                 if (v.asset, v.signal) in on_mqtt)
    stats = asyncio.run(run_scenario(plant, scenario, RunOptions(speed=0, only={"plant-mqtt"})))
    return values, stats.mqtt_messages, stats.wall_s


def split_processes(hours: float) -> float:
    base = free_ports(1)[0]
    started = time.perf_counter()
    subprocess.run([str(REPO / ".venv" / "bin" / "smeltwatch"), "sim", "run", "normal-month",
                    "--speed", "0", "--duration", str(hours), "--opcua-base-port", str(base)],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--skip-split", action="store_true")
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # "no security" warnings, per server
    scenario = load_scenario("normal-month").model_copy(
        update={"duration": timedelta(hours=args.hours), "sampling": timedelta(seconds=60)})
    print(f"{args.hours:g} simulated hours of normal-month at 60 s sampling, speed 0\n")
    print(f"{'':44s} {'samples':>9s} {'wall s':>7s} {'samples/s':>10s} {'vs model':>8s}")

    def row(name: str, samples: int, wall: float, base: float, extra: str = "") -> None:
        rate = samples / wall
        print(f"{name:44s} {samples:9d} {wall:7.2f} {rate:10,.0f} {rate / base:8.2f} {extra}")

    samples, wall = model_only(bench_plant(), scenario)
    base = samples / wall
    row("model only (baseline, no I/O)", samples, wall, base)
    writes, wall = opcua_in_process(bench_plant(), scenario)
    row("OPC UA, 6 PLC servers in one process", writes, wall, base)
    writes, received, wall = opcua_with_subscriber(bench_plant(), scenario)
    row("OPC UA, 1 furnace PLC, a client subscribed", writes, wall, base,
        f"({received} notifications received)")
    values, messages, wall = mqtt_batched(bench_plant(), scenario)
    row("MQTT batched, demo plant's MQTT source", values, wall, base,
        f"({messages} messages, {messages / wall:,.0f}/s)")
    values, messages, wall = mqtt_batched(bench_plant(all_on_mqtt=True), scenario)
    row("MQTT batched, all 476 signals", values, wall, base,
        f"({messages} messages, {messages / wall:,.0f}/s)")
    if not args.skip_split:
        wall = split_processes(args.hours)
        print(f"\nwhole plant, `smeltwatch sim run` (7 processes): {args.hours:g} simulated "
              f"hours in {wall:.1f} s wall (target for 24 h: < 60 s)")


if __name__ == "__main__":
    main()
