"""MQTT side of the simulated plant: meters, the LHV analyser, the weather station and the
weighbridges publish over MQTT 5 with QoS 1, single-value or batched, as real gateways do."""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collector.contracts import Plant
from collector.contracts.plant import MqttSource
from collector.security.mqtt import MqttConnection, TlsContext
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
    # cut the connection (no DISCONNECT) after every N messages; 0: never. The publisher
    # reconnects and re-sends what was not acknowledged, so duplicates, never loss.
    drop_connection_every: int = 0


class MqttPublisher:
    """A paho client with back-pressure: at most `max_pending` unacknowledged QoS 1 messages
    (paho fails beyond 65,535 in flight whatever its queue setting).

    The session is persistent (clean start on the first connection only, `session_expiry_s`),
    and a lost connection is retried with back-off from 1 s to `max_reconnect_delay_s`; paho
    re-sends every unacknowledged message, so a subscriber may see a duplicate (same `seq`)
    but never a gap. `reconnects` and `connection_drops` count what happened."""

    def __init__(self, connection: MqttConnection | str, client_id: str, *, qos: int = 1,
                 max_pending: int = 10_000, session_expiry_s: int = 3600,
                 max_reconnect_delay_s: int = 30) -> None:
        self.connection = (connection if isinstance(connection, MqttConnection)
                           else MqttConnection(connection))
        self.qos, self.max_pending, self.session_expiry_s = qos, max_pending, session_expiry_s
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1_000)
        self.client.reconnect_delay_set(1, max_reconnect_delay_s)
        if self.connection.username:
            self.client.username_pw_set(self.connection.username, self.connection.password)
        self._tls: TlsContext | None = None
        if self.connection.tls:
            self._tls = self.connection.tls_context()
            self.client.tls_set_context(self._tls)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        # paho calls back from its network thread; everything below is shared with it
        self._lock = threading.Condition()
        self._unacked: dict[int, str] = {}              # mid → topic
        self._acked_early: dict[int, ReasonCode] = {}   # PUBACK seen before publish() returned
        self._refused: list[str] = []
        self._connack = threading.Event()
        self._connect_failure: str | None = None
        self._last_socket_error = ""
        self._accepted_once = False
        self._closing = False
        self.sent = 0
        self.reconnects = 0
        self.connection_drops = 0

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect and wait for the broker's CONNACK: a refusal (wrong password, untrusted
        certificate, no answer) raises PublishError rather than surfacing at the first flush."""
        where = self.connection.address
        properties = _properties(PacketTypes.CONNECT, SessionExpiryInterval=self.session_expiry_s)
        self.client.connect_timeout = timeout_s
        self.client.on_log = self._on_log
        try:
            self.client.connect(self.connection.host, self.connection.port, keepalive=30,
                                clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                properties=properties)
        except OSError as exc:
            handshake_begun = self._tls is not None and self._tls.close_failed_socket()
            if handshake_begun or isinstance(exc, ssl.SSLError):
                raise PublishError(f"TLS handshake with {where} failed: "
                                   f"{_tls_problem(exc)}") from exc
            raise PublishError(f"cannot connect to the MQTT broker at {where}: {exc}") from exc
        self.client.loop_start()
        answered = self._connack.wait(timeout_s)
        with self._lock:
            failure, detail = self._connect_failure, self._last_socket_error
        if answered and failure is None:
            self.client.on_log = None
            return
        self._abandon()
        if failure is None:
            failure = f"the MQTT broker at {where} sent no CONNACK within {timeout_s:g} s"
            if detail:
                failure += f" ({detail})"
        raise PublishError(failure)

    def publish(self, topic: str, payload: bytes, *, qos: int | None = None,
                retain: bool = False, properties: Properties | None = None) -> None:
        """Publish at the publisher's QoS (a replay passes each message's own QoS, retain
        flag and MQTT 5 properties)."""
        info = self.client.publish(topic, payload, qos=self.qos if qos is None else qos,
                                   retain=retain, properties=properties)
        # NO_CONN: the connection is down; paho keeps the message and sends it on reconnect
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        with self._lock:
            self.sent += 1
            reason = self._acked_early.pop(info.mid, None)
            if reason is None:
                self._unacked[info.mid] = topic
            elif reason.is_failure:
                self._refused.append(f"{topic}: {reason}")
            if len(self._unacked) > self.max_pending:
                self._wait_for_acks(self.max_pending, timeout_s=60.0)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Return when the broker has acknowledged every message published so far; a lost
        connection on the way is retried within `timeout_s`."""
        with self._lock:
            self._wait_for_acks(0, timeout_s)
            refused, self._refused = self._refused, []
        if refused:
            raise PublishError(f"the MQTT broker at {self.connection.address} refused "
                               f"{len(refused)} message(s), e.g. {refused[0]}")

    def drop_connection(self) -> bool:
        """Cut the connection without a DISCONNECT, as a flaky plant network does. False if
        there was no connection to cut (it is already down)."""
        sock = self.client.socket()
        if not (self.client.is_connected() and isinstance(sock, socket.socket)):
            return False
        try:
            # the TCP socket under any TLS layer: paho's thread sees the end of the stream
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            return False
        with self._lock:
            self.connection_drops += 1
        log.info("chaos: dropped the connection to the MQTT broker at %s",
                 self.connection.address)
        return True

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._closing = True
            # the broker may forget this session now that nothing is left to re-send
            self.client.disconnect(properties=_properties(PacketTypes.DISCONNECT,
                                                          SessionExpiryInterval=0))
            self.client.loop_stop()
            self._release_callbacks()

    def _wait_for_acks(self, at_most: int, timeout_s: float) -> None:
        # called with self._lock held
        if not self._lock.wait_for(lambda: len(self._unacked) <= at_most, timeout_s):
            problem = f" (last connection problem: {self._connect_failure})" \
                if self._connect_failure else ""
            raise PublishError(f"the MQTT broker at {self.connection.address} did not "
                               f"acknowledge {len(self._unacked)} message(s) within "
                               f"{timeout_s:g} s{problem}")

    def _abandon(self) -> None:
        self._closing = True
        self.client.disconnect()  # also ends paho's reconnect attempts
        self.client.loop_stop()
        self._release_callbacks()

    def _release_callbacks(self) -> None:
        # they refer back to us; without that cycle the client is freed at once and closes
        # its sockets itself rather than leaving them to the garbage collector (a warning)
        self.client.on_connect = self.client.on_disconnect = None
        self.client.on_publish = self.client.on_log = None

    def _on_connect(self, _client: mqtt.Client, _userdata: object, flags: ConnectFlags,
                    reason: ReasonCode, _properties: Properties | None) -> None:
        where = self.connection.address
        with self._lock:
            if reason.is_failure:
                self._connect_failure = (f"the MQTT broker at {where} refused the connection: "
                                         f"{reason}{_connack_hint(reason)}")
                if self._connack.is_set():
                    log.warning("%s; retrying", self._connect_failure)
            elif self._accepted_once:
                self.reconnects += 1
                self._connect_failure = None
                log.info("reconnected to the MQTT broker at %s (session present: %s)",
                         where, flags.session_present)
            else:
                self._accepted_once = True
        self._connack.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object,
                       flags: DisconnectFlags, reason: ReasonCode,
                       _properties: Properties | None) -> None:
        where = self.connection.address
        with self._lock:
            if not self._accepted_once:
                if self._connect_failure is None:
                    self._connect_failure = (
                        f"the MQTT broker at {where} closed the connection before its CONNACK "
                        f"({self._last_socket_error or reason}){self._closed_hint()}")
            elif not self._closing:
                why = (f"the broker sent DISCONNECT: {reason}"
                       if flags.is_disconnect_packet_from_server else "connection lost")
                log.warning("lost the connection to the MQTT broker at %s (%s); reconnecting",
                            where, why)
        self._connack.set()

    def _closed_hint(self) -> str:
        if not self.connection.tls:
            return " (a TLS-only listener? try mqtts://)"
        if not self.connection.client_cert:
            return " (does the broker require a client certificate?)"
        return " (is the client certificate signed by a CA the broker trusts?)"

    def _on_publish(self, _client: mqtt.Client, _userdata: object, mid: int,
                    reason: ReasonCode, _properties: Properties) -> None:
        with self._lock:
            topic = self._unacked.pop(mid, None)
            if topic is None:
                self._acked_early[mid] = reason
            elif reason.is_failure:
                self._refused.append(f"{topic}: {reason}")
            self._lock.notify_all()

    def _on_log(self, _client: mqtt.Client, _userdata: object, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            with self._lock:
                self._last_socket_error = text


def _properties(packet_type: int, **values: int) -> Properties:
    properties = Properties(packet_type)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def _tls_problem(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"certificate verify failed: {exc.verify_message} (is the CA file the one "
                f"that signed the broker's certificate, and is the host name in it?)")
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return f"{exc.strerror or exc} (is it a TLS listener? try mqtt://)"


def _connack_hint(reason: ReasonCode) -> str:
    if reason.getName() in ("Bad user name or password", "Not authorized"):
        return " (check the MQTT user name and password)"
    return ""


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
        self._published = 0   # messages sent, duplicates included: the drop-connection clock

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
        drop_every = self.chaos.drop_connection_every
        for topic, payload in self._with_chaos(messages):
            self.publisher.publish(topic, payload)
            self._published += 1
            if drop_every and self._published % drop_every == 0:
                self.publisher.drop_connection()
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
