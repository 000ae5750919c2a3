"""The MQTT source: one broker, QoS 1, a persistent session, and acknowledgement only after
the data is durable.

One thread of ours runs paho's network loop, reconnects (capped, jittered back-off) and is the
only thread that touches the paho client — paho is not safe for a PUBACK queued from another
thread while it reconnects. A message is decoded in that thread and submitted to the pipeline,
waiting while the pipeline's queue is full — paho then stops reading and the broker holds the
rest (back-pressure without loss). paho's automatic acknowledgement is off: the pipeline
calls the batch's `on_durable` once the message's readings are in the database or the spool;
that queues the PUBACK, which the network thread sends. A message received but not yet durable
when the collector dies is delivered again by the broker (clean start off, session expiry > 0);
the store's idempotent writes make the second delivery harmless.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from concurrent.futures import CancelledError as FutureCancelled
from datetime import UTC, datetime
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collector.contracts import Plant
from collector.contracts.plant import MqttSource
from collector.pipeline.batch import Batch
from collector.security.mqtt import MqttConnection
from collector.sources.backoff import Backoff
from collector.sources.health import SourceHealth
from collector.sources.mqtt.decoders import decode
from collector.sources.mqtt.settings import MqttSettings
from collector.sources.mqtt.topics import TopicMap

log = logging.getLogger(__name__)


class Sink(Protocol):
    async def submit(self, batch: Batch) -> None: ...


class MqttCollectorSource:
    def __init__(self, plant: Plant, source: MqttSource, sink: Sink,
                 settings: MqttSettings | None = None, url: str | None = None) -> None:
        self.plant, self.source, self.sink = plant, source, sink
        self.settings = s = settings or MqttSettings()
        self.connection = MqttConnection(url or source.url, username=s.username,
                                         password=s.password, ca_file=s.ca_file,
                                         client_cert=s.client_cert, client_key=s.client_key)
        self.topics = TopicMap(plant, source.id, share_group=s.share_group)
        self.health = SourceHealth(source.id, "mqtt", self.connection.address)
        self.origin = f"mqtt:{source.id}"
        self.client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = threading.Event()
        self._stopping = threading.Event()
        self._acks: collections.deque[tuple[int, int]] = collections.deque()  # (mid, qos)
        self._thread: threading.Thread | None = None
        self.messages = 0
        self.stamped_on_receipt = 0

    async def run(self) -> None:
        """Until cancelled. Connection problems are reported in `health`, never raised."""
        self._loop = asyncio.get_running_loop()
        self.client = self._make_client()
        self._accepting.set()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._network, args=(self.client,), daemon=True,
                                        name=f"mqtt-{self.source.id}")
        self._thread.start()
        try:
            await asyncio.Event().wait()  # the network thread does the work
        finally:
            await self.stop()

    def pause(self) -> None:
        """Stop taking messages (the pipeline can still acknowledge those it has)."""
        self._accepting.clear()

    async def stop(self) -> None:
        """Stop taking messages, send the acknowledgements queued so far and leave the broker
        with a normal DISCONNECT (the session stays); what was not acknowledged comes again."""
        self._accepting.clear()
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 30)
        self.client = None

    # --- the network thread: the only one that touches paho ----------------------------------
    def _network(self, client: mqtt.Client) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.settings.session_expiry_s
        properties.ReceiveMaximum = self.settings.receive_maximum
        backoff = Backoff(1.0, self.settings.reconnect_max_delay_s)
        connected = False
        while not self._stopping.is_set():
            if not connected:
                try:
                    client.connect(self.connection.host, self.connection.port,
                                   keepalive=self.settings.keepalive_s, clean_start=False,
                                   properties=properties)
                    connected = True
                except (OSError, ValueError) as exc:  # refused, unreachable, TLS failure
                    self.health.went_down(f"cannot connect to the broker at "
                                          f"{self.connection.address}: {exc}")
                    log.warning("MQTT source %s: %s", self.source.id, self.health.last_error)
                    self._stopping.wait(backoff.next_delay())
                    continue
            rc = client.loop(timeout=0.05)
            self._send_acks(client)
            if rc == mqtt.MQTT_ERR_SUCCESS:
                if self.health.up:
                    backoff.reset()
            else:
                connected = False  # on_disconnect said why; try again after a pause
                self._stopping.wait(backoff.next_delay())
        if connected:
            self._send_acks(client)
            client.disconnect()  # normal DISCONNECT: the session and its queue stay
            client.loop(timeout=0.5)

    def _send_acks(self, client: mqtt.Client) -> None:
        acks = self._acks
        while acks:
            mid, qos = acks.popleft()
            # not connected: the PUBACK is lost with the connection, and the broker sends
            # the message again — a duplicate the store absorbs, never a loss
            client.ack(mid, qos)

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        if self.connection.username:
            client.username_pw_set(self.connection.username, self.connection.password)
        if self.connection.tls:
            client.tls_set_context(self.connection.tls_context())
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # --- paho's callbacks, in the network thread ---------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: object, flags: ConnectFlags,
                    reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:
            self.health.went_down(f"the broker at {self.connection.address} refused the "
                                  f"connection: {reason}")
            log.warning("MQTT source %s: %s", self.source.id, self.health.last_error)
            return
        # subscribe on every connection: a session that expired has no subscriptions left
        client.subscribe([(topic, 1) for topic in self.topics.subscriptions()])
        log.info("MQTT source %s connected to %s (session %s)", self.source.id,
                 self.connection.address, "resumed" if flags.session_present else "new")

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[ReasonCode],
                      _p: Properties | None) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self.health.went_down(f"the broker refused the subscription: {', '.join(refused)}")
            log.error("MQTT source %s: %s", self.source.id, self.health.last_error)
        else:
            self.health.went_up()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: DisconnectFlags,
                       reason: ReasonCode, _p: Properties | None) -> None:
        if self._accepting.is_set():
            self.health.went_down(f"lost the broker at {self.connection.address}: {reason}")
            log.warning("MQTT source %s: %s (reconnecting)", self.source.id,
                        self.health.last_error)

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if not self._accepting.is_set() or self._loop is None:
            return  # shutting down: not acknowledged, so the broker sends it again
        received = datetime.now(UTC)
        decoded = decode(msg.topic, bytes(msg.payload), received, self.topics,
                         self.origin)
        mid, qos = msg.mid, msg.qos

        def acknowledge() -> None:  # in the pipeline's task: queue it for the network thread
            self._acks.append((mid, qos))

        batch = Batch(self.source.id, decoded.readings, decoded.events, decoded.dead_letters,
                      received.timestamp(), on_durable=acknowledge if qos else None)
        self.messages += 1
        self.stamped_on_receipt += decoded.stamped_on_receipt
        self.health.readings += len(decoded.readings)
        self.health.dead_letters += len(decoded.dead_letters)
        self.health.last_value_at = received.timestamp()
        future = asyncio.run_coroutine_threadsafe(self.sink.submit(batch), self._loop)
        # waits while the pipeline is full: back-pressure on the broker. If the collector is
        # stopping, the message stays unacknowledged and the broker sends it again.
        with contextlib.suppress(FutureCancelled, RuntimeError):
            future.result()

