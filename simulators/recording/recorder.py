"""`smeltwatch record`: MQTT topics and OPC UA servers into one recording file.

Messages of both protocols are numbered and stamped as they arrive (paho's thread and the
OPC UA client's event loop share one counter under a lock), buffered, and committed to the
file every `commit_every_s`: a killed recorder loses at most that much.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.security.mqtt import MqttConnection
from simulators.recording import opcua_codec
from simulators.recording.mqtt_recorder import MqttRecorder
from simulators.recording.opcua_recorder import OpcUaRecorder
from simulators.recording.store import RecordingWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordOptions:
    mqtt: MqttConnection | None = None
    topics: tuple[str, ...] = ("smelter/v1/#",)
    opcua_endpoints: tuple[str, ...] = ()
    opcua_wait_s: float = 30.0          # for a server that is still starting
    duration_s: float | None = None     # stop after this long
    idle_s: float | None = None         # stop after this long without a message (once one came)
    commit_every_s: float = 0.25
    command_line: str = ""
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordStats:
    mqtt_messages: int = 0
    opcua_values: int = 0
    channels: int = 0
    wall_s: float = 0.0


class Recorder:
    def __init__(self, path: Path, options: RecordOptions) -> None:
        self.path, self.options = path, options
        self.writer = RecordingWriter(path, options.command_line, options.notes)
        self.stats = RecordStats()
        self._lock = threading.Lock()
        self._buffer: list[tuple[int, int, str, str, str, bytes, int | None, bool | None,
                                 dict[str, Any] | None]] = []
        self._seq = 0
        self._wall0_ns, self._mono0_ns = time.time_ns(), time.monotonic_ns()
        self._last_message = 0.0
        self._mqtt: MqttRecorder | None = None
        self._opcua: list[OpcUaRecorder] = []

    def _take(self, protocol: str, endpoint: str, name: str, data: bytes, qos: int | None,
              retain: bool | None, properties: dict[str, Any] | None) -> None:
        with self._lock:
            self._seq += 1
            recv = self._wall0_ns + time.monotonic_ns() - self._mono0_ns
            self._buffer.append((self._seq, recv, protocol, endpoint, name, data, qos, retain,
                                 properties))
            self._last_message = time.monotonic()

    def _on_mqtt(self, url: str, topic: str, payload: bytes, qos: int, retain: bool,
                 properties: dict[str, Any] | None) -> None:
        self._take("mqtt", url, topic, payload, qos, retain, properties)

    def _on_opcua(self, endpoint: str, name: str, data: bytes) -> None:
        self._take("opcua", endpoint, name, data, None, None, None)

    async def start(self) -> None:
        for endpoint in self.options.opcua_endpoints:
            recorder = OpcUaRecorder(endpoint, self._on_opcua)
            for spec in await recorder.browse(self.options.opcua_wait_s):
                self.writer.channel("opcua", endpoint,
                                    opcua_codec.channel_name(spec.namespace, spec.identifier),
                                    opcua_codec.spec_to_json(spec))
            await recorder.subscribe()
            self._opcua.append(recorder)
        if self.options.mqtt is not None:
            self._mqtt = MqttRecorder(self.options.mqtt, self.options.topics, self._on_mqtt,
                                      f"smeltwatch-record-{id(self):x}")
            await asyncio.to_thread(self._mqtt.start)

    def commit(self) -> int:
        with self._lock:
            rows, self._buffer = self._buffer, []
        for seq, recv, protocol, endpoint, name, data, qos, retain, properties in rows:
            channel = self.writer.channel(protocol, endpoint, name)
            self.writer.append(seq, channel, recv, data, qos=qos, retain=retain,
                               properties=properties)
            if protocol == "mqtt":
                self.stats.mqtt_messages += 1
            else:
                self.stats.opcua_values += 1
        return self.writer.commit()

    async def run(self, stop: asyncio.Event | None = None) -> RecordStats:
        started = time.monotonic()
        o = self.options
        while not (stop is not None and stop.is_set()):
            await asyncio.sleep(o.commit_every_s)
            self.commit()
            now = time.monotonic()
            if o.duration_s is not None and now - started >= o.duration_s:
                break
            if o.idle_s is not None and self._last_message and now - self._last_message >= o.idle_s:
                break
        self.stats.wall_s = time.monotonic() - started
        return self.stats

    async def close(self) -> None:
        if self._mqtt is not None:
            await asyncio.to_thread(self._mqtt.stop)
        for recorder in self._opcua:
            try:
                await recorder.stop()
            except (TimeoutError, ConnectionError, OSError) as exc:
                log.warning("closing the OPC UA session of %s: %s", recorder.endpoint, exc)
        self.commit()
        self.stats.channels = self.writer.channel_count
        self.writer.close()


async def record(path: Path, options: RecordOptions,
                 stop: asyncio.Event | None = None) -> RecordStats:
    recorder = Recorder(path, options)
    try:
        await recorder.start()
        return await recorder.run(stop)
    finally:
        await recorder.close()
