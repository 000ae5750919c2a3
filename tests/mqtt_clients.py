"""A real paho subscriber for tests: keeps every message as received (topic, payload bytes,
QoS, retain flag, MQTT 5 properties), waits for its SUBACK before returning, and lets a test
wait for what it expects. TLS and passwords when the URL and arguments ask for them."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector.security.mqtt import MqttConnection
from simulators.recording import mqtt_properties

LOCAL_BROKER = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[str, Any] | None

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    def __init__(self, url: str = LOCAL_BROKER, topic: str = "#", *,
                 username: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, qos: int = 1) -> None:
        self.received: list[Received] = []
        self._arrived = threading.Condition()
        self._subscribed = threading.Event()
        self._topic, self._qos = topic, qos
        target = MqttConnection(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if target.tls:
            self.client.tls_set_context(ssl.create_default_context(cafile=ca_file))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        assert self._subscribed.wait(15), "the subscriber got no SUBACK"

    @property
    def messages(self) -> list[tuple[str, Any]]:
        """(topic, decoded JSON) of every message so far."""
        with self._arrived:
            return [(r.topic, r.json()) for r in self.received]

    def seqs(self) -> list[int]:
        return [payload["seq"] for _, payload in self.messages]

    def wait_until(self, done: Callable[[list[Received]], bool], timeout_s: float = 30.0) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: done(self.received), timeout_s)

    def wait_for(self, count: int, timeout_s: float = 30.0) -> bool:
        return self.wait_until(lambda received: len(received) >= count, timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client.on_connect = self.client.on_subscribe = self.client.on_message = None

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe(self._topic, options=SubscribeOptions(qos=self._qos,
                                                               retainAsPublished=True))

    def _on_subscribe(self, *_: object) -> None:
        self._subscribed.set()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._arrived:
            self.received.append(Received(msg.topic, bytes(msg.payload), msg.qos,
                                          bool(msg.retain),
                                          mqtt_properties.to_json(msg.properties)))
            self._arrived.notify_all()
