"""MQTT side of the simulated plant: meters, the LHV analyser, the weather station and the
weighbridges publish over MQTT 5 with QoS 1, single-value or batched, as real gateways do."""

from __future__ import annotations

import collections
import logging
import random
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.contracts import Plant
from collector.contracts.plant import MqttSource
from simulators import payloads
from simulators.clock import VirtualClock
from simulators.model.feed import Frame

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class MqttChaos:
    """Misbehaviour real networks and gateways show (as OPC PLC's chaos mode does)."""

    duplicate_pct: float = 0.0   # publish this share of messages twice
    reorder_pct: float = 0.0     # swap this share of messages with the next one
    seed: int = 0


class MqttPublisher:
    """A paho client with back-pressure: at most `max_pending` unacknowledged QoS 1 messages
    (paho fails beyond 65,535 in flight whatever its queue setting)."""

    def __init__(self, url: str, client_id: str, *, username: str | None = None,
                 password: str | None = None, ca_file: str | None = None, qos: int = 1,
                 max_pending: int = 10_000) -> None:
        self.url, self.qos, self.max_pending = urlparse(url), qos, max_pending
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1_000)
        if username:
            self.client.username_pw_set(username, password)
        if self.url.scheme == "mqtts":
            context = ssl.create_default_context(cafile=ca_file)
            self.client.tls_set_context(context)
        self._pending: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
        self.sent = 0

    def connect(self, timeout_s: float = 10.0) -> None:
        port = self.url.port or (8883 if self.url.scheme == "mqtts" else 1883)
        try:
            self.client.connect(self.url.hostname or "127.0.0.1", port, keepalive=30)
        except OSError as exc:
            raise PublishError(f"cannot connect to the MQTT broker at "
                               f"{self.url.hostname}:{port}: {exc}") from exc
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        self.sent += 1
        self._pending.append(info)
        while len(self._pending) > self.max_pending:
            self._pending.popleft().wait_for_publish(timeout=30)

    def flush(self, timeout_s: float = 30.0) -> None:
        while self._pending:
            info = self._pending.popleft()
            info.wait_for_publish(timeout=timeout_s)
            if not info.is_published():
                raise PublishError("the broker did not acknowledge a message in time")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.client.disconnect()
            self.client.loop_stop()


class MqttFeed:
    """Turns frames of the plant model into MQTT messages for the plant's MQTT bindings."""

    def __init__(self, plant: Plant, source: MqttSource, publisher: MqttPublisher,
                 clock: VirtualClock, *, batched: bool = True, batch_size: int = 500,
                 chaos: MqttChaos | None = None) -> None:
        self.plant, self.source, self.publisher, self.clock = plant, source, publisher, clock
        self.batched, self.batch_size = batched, batch_size
        self.chaos = chaos or MqttChaos()
        self._rng = random.Random(f"chaos/{self.chaos.seed}")
        self._bindings = {(b.asset, b.signal): b for b in plant.bindings()
                          if b.source == source.id}
        self.batch_topic = f"smelter/v1/{plant.site.id}/_batch/{source.id}"
        self.events_topic = f"smelter/v1/{plant.site.id}/_events"
        self.seq = 0

    def publish(self, frame: Frame) -> int:
        """Publish the frame's values and events; returns the number of messages."""
        messages: list[tuple[str, bytes]] = []
        items: list[dict[str, Any]] = []
        for v in frame.values:
            binding = self._bindings.get((v.asset, v.signal))
            if binding is None:
                continue
            raw = None if v.value is None else (v.value - binding.offset) / binding.factor
            t = self.clock.at(v.offset_s)
            if self.batched:
                items.append(payloads.value_item(t, raw, v.status) | {"topic": binding.address})
                if len(items) >= self.batch_size:
                    messages.append((self.batch_topic, payloads.batch(items, self._next())))
                    items = []
            else:
                messages.append((binding.address, payloads.single(t, raw, v.status,
                                                                  self._next())))
        if items:
            messages.append((self.batch_topic, payloads.batch(items, self._next())))
        for e in frame.events:
            messages.append((f"{self.events_topic}/{e.kind.value}",
                             payloads.event(e, self.clock.at(e.offset_s), self._next())))
        for topic, payload in self._with_chaos(messages):
            self.publisher.publish(topic, payload)
        return len(messages)

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _with_chaos(self, messages: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        chaos = self.chaos
        if not (chaos.duplicate_pct or chaos.reorder_pct):
            return messages
        out: list[tuple[str, bytes]] = []
        for message in messages:
            out.append(message)
            if self._rng.random() * 100 < chaos.duplicate_pct:
                out.append(message)
        for i in range(len(out) - 1):
            if self._rng.random() * 100 < chaos.reorder_pct:
                out[i], out[i + 1] = out[i + 1], out[i]
        return out
