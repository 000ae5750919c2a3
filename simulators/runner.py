"""Run a scenario: step the plant model and send each frame out over OPC UA and MQTT, paced by
the virtual clock. A process may serve only some of the plant's sources (`only`): every
process computes the same deterministic plant and publishes its own share, so a large plant
splits across processes, one per PLC, without any coordination."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collector.contracts import Plant
from collector.contracts.plant import MqttSource, OpcUaSource
from collector.security.mqtt import MqttConnection
from simulators.clock import VirtualClock
from simulators.model import Frame, PlantSim
from simulators.mqtt_publisher import MqttChaos, MqttFeed, MqttPublisher
from simulators.opcua import OpcUaChaos, OpcUaSecurity, PlcServer, QualityCycle
from simulators.scenario import Scenario

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    speed: float | None = None           # None: the scenario's speed; 0: as fast as possible
    only: set[str] | None = None         # source ids to serve (None: all)
    mqtt_url: str | None = None          # override the plant's broker URL
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    mqtt_ca_file: Path | None = None
    start_delay_s: float = 0.0           # wall seconds between servers up and the first frame
    opcua_ports: dict[str, int] = field(default_factory=dict)  # source id → port override
    batched: bool = True
    security: OpcUaSecurity | None = None
    chaos: MqttChaos | None = None
    opcua_chaos: OpcUaChaos | None = None
    quality_cycle: QualityCycle | None = None
    linger_s: float = 0.0                # keep the servers up after the last frame
    on_frame: Callable[[Frame], None] | None = None


@dataclass
class RunStats:
    frames: int = 0
    values: int = 0
    opcua_writes: int = 0
    mqtt_messages: int = 0
    wall_s: float = 0.0


class ScenarioRun:
    """`await start()` brings the servers and publishers up, `await play()` sends every frame,
    `await close()` takes them down. `run_scenario` does all three."""

    def __init__(self, plant: Plant, scenario: Scenario, options: RunOptions) -> None:
        self.plant, self.scenario, self.options = plant, scenario, options
        speed = scenario.speed if options.speed is None else options.speed
        self.clock = VirtualClock(scenario.start, speed)
        wanted = [s for s in plant.sources if options.only is None or s.id in options.only]
        self.servers = [PlcServer(plant, s, self.clock, options.security,
                                  _endpoint(s, options), options.opcua_chaos,
                                  options.quality_cycle)
                        for s in wanted if isinstance(s, OpcUaSource)]
        self._mqtt_sources = [s for s in wanted if isinstance(s, MqttSource)]
        self.feeds: list[MqttFeed] = []
        self.stats = RunStats()

    async def start(self) -> None:
        for server in self.servers:
            await server.start()
        for s in self._mqtt_sources:
            o = self.options
            broker = MqttConnection(o.mqtt_url or s.url, username=o.mqtt_username,
                                    password=o.mqtt_password, ca_file=o.mqtt_ca_file)
            publisher = MqttPublisher(broker, f"smeltwatch-sim-{s.id}-{self.scenario.seed}")
            await asyncio.to_thread(publisher.connect)
            self.feeds.append(MqttFeed(self.plant, s, publisher, self.clock,
                                       batched=self.options.batched, chaos=self.options.chaos))

    async def play(self, stop: asyncio.Event | None = None) -> RunStats:
        if self.options.start_delay_s > 0:
            await asyncio.sleep(self.options.start_delay_s)
        stats, started = self.stats, time.perf_counter()
        self.clock.restart()
        for frame in PlantSim(self.plant, self.scenario).frames():
            if stop is not None and stop.is_set():
                break
            await self.clock.wait_for(frame.offset_s)
            stats.frames += 1
            stats.values += len(frame.values)
            for server in self.servers:
                stats.opcua_writes += await server.apply(frame)
            for feed in self.feeds:
                stats.mqtt_messages += feed.publish(frame)
            if self.options.on_frame is not None:
                self.options.on_frame(frame)
            if stats.frames % 16 == 0:
                await asyncio.sleep(0)  # let the servers answer their clients
        for feed in self.feeds:
            await asyncio.to_thread(feed.publisher.flush)
        stats.wall_s = time.perf_counter() - started
        return stats

    async def close(self) -> None:
        for feed in self.feeds:
            await asyncio.to_thread(feed.publisher.close)
        for server in self.servers:
            await server.stop()


async def run_scenario(plant: Plant, scenario: Scenario, options: RunOptions,
                       stop: asyncio.Event | None = None) -> RunStats:
    run = ScenarioRun(plant, scenario, options)
    try:
        await run.start()
        stats = await run.play(stop)
        if options.linger_s:
            await asyncio.sleep(options.linger_s)
        return stats
    finally:
        await run.close()


def _endpoint(source: OpcUaSource, options: RunOptions) -> str:
    port = options.opcua_ports.get(source.id)
    if port is None:
        return source.endpoint
    host = source.endpoint.split("//", 1)[1].rsplit(":", 1)[0]
    return f"opc.tcp://{host}:{port}"
