"""Records MQTT: subscribes to topic filters at QoS 2 with Retain As Published, so every
message arrives with the QoS and retain flag it was published with, and keeps it byte for
byte with its MQTT 5 properties."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector.security.mqtt import MqttConnection
from simulators.mqtt_publisher import PublishError
from simulators.recording import mqtt_properties

log = logging.getLogger(__name__)
# (broker URL, topic, payload, qos, retain, MQTT 5 properties)
Sink = Callable[[str, str, bytes, int, bool, dict[str, Any] | None], None]


class MqttRecorder:
    def __init__(self, connection: MqttConnection, topics: tuple[str, ...], sink: Sink,
                 client_id: str) -> None:
        self.connection, self.topics, self.sink = connection, topics, sink
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        if connection.username:
            self.client.username_pw_set(connection.username, connection.password)
        if connection.tls:
            self.client.tls_set_context(connection.tls_context())
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self._subscribed = threading.Event()
        self._refusal: str | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        where = self.connection.address
        try:
            self.client.connect(self.connection.host, self.connection.port, keepalive=30)
        except OSError as exc:
            raise PublishError(f"cannot connect to the MQTT broker at {where}: {exc}") from exc
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s) or self._refusal:
            self.client.loop_stop()
            self.client.disconnect()
            raise PublishError(self._refusal or f"the MQTT broker at {where} did not accept "
                               f"the recorder's subscription within {timeout_s:g} s")
        log.info("recording MQTT %s from %s", ", ".join(self.topics), where)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: ConnectFlags,
                    reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:
            self._refusal = (f"the MQTT broker at {self.connection.address} refused the "
                             f"recorder: {reason}")
            self._subscribed.set()
            return
        options = SubscribeOptions(qos=2, retainAsPublished=True)
        client.subscribe([(topic, options) for topic in self.topics])
        client.on_subscribe = self._on_subscribe

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int,
                      reasons: list[ReasonCode], _p: Properties | None) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self._refusal = f"the MQTT broker refused the subscription: {', '.join(refused)}"
        self._subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: DisconnectFlags,
                       reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:
            log.warning("recorder lost the MQTT broker at %s: %s (reconnecting; messages "
                        "published meanwhile are not recorded)", self.connection.address,
                        reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.sink(self.connection.url, msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain),
                  mqtt_properties.to_json(msg.properties))
