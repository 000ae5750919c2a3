"""Plays a recording back into MQTT and/or OPC UA servers (rosbag2's `play` as the model):
paced by the recorded receive times at `rate`, from `start_offset_s`, looping if asked, with
topic filters and remaps, and original or now-shifted timestamps.

MQTT messages go to a broker with their recorded QoS, retain flag and MQTT 5 properties. OPC
UA values are served by one simulated device per recorded endpoint, with the recorded
address space (browse paths, units, ranges) and every DataValue as recorded — including the
server timestamp, unless shifted.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from asyncua import ua

from collector.security.mqtt import MqttConnection
from simulators.mqtt_publisher import MqttPublisher
from simulators.opcua.device import OpcUaDevice
from simulators.opcua.security import OpcUaSecurity
from simulators.recording import mqtt_properties, opcua_codec, payload_edit
from simulators.recording.store import Channel, Message, Recording, RecordingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    rate: float = 1.0                        # × recorded speed; 0: as fast as possible
    start_offset_s: float = 0.0              # skip this much of the recording's start
    loops: int = 1                           # 0: forever
    topics: tuple[str, ...] = ()             # MQTT topic filters to play (default: all)
    nodes: tuple[str, ...] = ()              # OPC UA channel globs (`nsu=…;s=…`) to play
    remap: tuple[tuple[str, str], ...] = ()  # MQTT topic prefix → new prefix
    timestamps: Literal["original", "now"] = "original"
    mqtt: bool = True
    opcua: bool = True
    mqtt_url: str | None = None              # instead of the recorded broker
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    mqtt_ca_file: Path | None = None
    opcua_endpoints: dict[str, str] = field(default_factory=dict)  # recorded → served
    security: OpcUaSecurity | None = None
    linger_s: float = 0.0                    # keep the OPC UA servers up after the end


@dataclass
class ReplayStats:
    mqtt_messages: int = 0
    opcua_values: int = 0
    loops: int = 0
    wall_s: float = 0.0


class Player:
    def __init__(self, path: Path, options: ReplayOptions) -> None:
        if options.rate < 0:
            raise RecordingError("--rate must be ≥ 0 (0 plays as fast as possible)")
        self.recording = Recording(path)
        self.options = options
        self.channels = {c.id for c in self.recording.channels.values() if self._selected(c)}
        self.devices: dict[str, OpcUaDevice] = {}
        self._node_ids: dict[int, ua.NodeId] = {}
        self.publisher: MqttPublisher | None = None
        self.stats = ReplayStats()

    def _selected(self, channel: Channel) -> bool:
        o = self.options
        if channel.protocol == "mqtt":
            return o.mqtt and (not o.topics or any(payload_edit.topic_matches(f, channel.name)
                                                   for f in o.topics))
        return o.opcua and (not o.nodes or any(fnmatch.fnmatchcase(channel.name, g)
                                               for g in o.nodes))

    async def start(self) -> None:
        chosen = [self.recording.channels[i] for i in sorted(self.channels)]
        brokers = {self.options.mqtt_url or c.endpoint for c in chosen if c.protocol == "mqtt"}
        if len(brokers) > 1:
            raise RecordingError(f"the recording spans brokers {sorted(brokers)}: replay one "
                                 "at a time with --mqtt-url and --topic")
        if brokers:
            o = self.options
            broker = MqttConnection(brokers.pop(), username=o.mqtt_username,
                                    password=o.mqtt_password, ca_file=o.mqtt_ca_file)
            self.publisher = MqttPublisher(broker, f"smeltwatch-replay-{id(self):x}")
            await asyncio.to_thread(self.publisher.connect)
        by_endpoint: dict[str, list[Channel]] = {}
        for c in chosen:
            if c.protocol == "opcua":
                by_endpoint.setdefault(c.endpoint, []).append(c)
        for recorded, channels in by_endpoint.items():
            endpoint = self.options.opcua_endpoints.get(recorded, recorded)
            specs = [opcua_codec.spec_from_json(c.spec or {}) for c in channels]
            device = OpcUaDevice(endpoint, f"smeltwatch replay of {recorded}",
                                 f"urn:smeltwatch:replay:{recorded.split('//', 1)[-1]}", specs,
                                 self.options.security)
            await device.start()
            self.devices[recorded] = device
            for c, spec in zip(channels, specs, strict=True):
                self._node_ids[c.id] = device.node_ids[(spec.namespace, spec.identifier)]

    async def play(self, stop: asyncio.Event | None = None) -> ReplayStats:
        started = time.perf_counter()
        span = self.recording.span_ns()
        if span is not None:
            from_ns = span[0] + round(self.options.start_offset_s * 1e9)
            loop = 0
            while self.options.loops == 0 or loop < self.options.loops:
                if stop is not None and stop.is_set():
                    break
                played = await self._play_once(from_ns, stop)
                loop += 1
                self.stats.loops = loop
                if not played:
                    break
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.flush)
        self.stats.wall_s = time.perf_counter() - started
        return self.stats

    async def _play_once(self, from_ns: int, stop: asyncio.Event | None) -> int:
        rate, played = self.options.rate, 0
        wall0 = time.monotonic()
        delta: timedelta | None = None
        for m in self.recording.messages(self.channels, from_ns):
            if stop is not None and stop.is_set():
                break
            if rate > 0:
                delay = wall0 + (m.recv_time_ns - from_ns) / 1e9 / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self.options.timestamps == "now" and delta is None:
                first = _first_time(m)
                if first is not None:
                    delta = datetime.now(UTC) - first
            await self._send(m, delta)
            played += 1
            if played % 256 == 0:
                await asyncio.sleep(0)  # let the OPC UA servers answer their clients
        return played

    async def _send(self, m: Message, delta: timedelta | None) -> None:
        if m.channel.protocol == "mqtt":
            assert self.publisher is not None
            payload = payload_edit.remap_inner_topics(m.data, self.options.remap)
            if delta is not None:
                payload = payload_edit.shift_times(payload, delta)
            self.publisher.publish(payload_edit.remap_topic(m.channel.name, self.options.remap),
                                   payload, qos=m.qos, retain=bool(m.retain),
                                   properties=mqtt_properties.from_json(m.properties))
            self.stats.mqtt_messages += 1
        else:
            value = opcua_codec.decode(m.data)
            if delta is not None:
                value = opcua_codec.shifted(value, delta)
            await self.devices[m.channel.endpoint].write(self._node_ids[m.channel.id], value)
            self.stats.opcua_values += 1

    async def close(self) -> None:
        if self.options.linger_s:
            await asyncio.sleep(self.options.linger_s)
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close)
        for device in self.devices.values():
            await device.stop()
        self.recording.close()


def _first_time(m: Message) -> datetime | None:
    if m.channel.protocol == "opcua":
        source_time: datetime | None = opcua_codec.decode(m.data).SourceTimestamp
        return source_time
    return payload_edit.first_time(m.data)


async def replay(path: Path, options: ReplayOptions,
                 stop: asyncio.Event | None = None) -> ReplayStats:
    player = Player(path, options)
    try:
        await player.start()
        return await player.play(stop)
    finally:
        await player.close()
