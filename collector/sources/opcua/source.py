"""The OPC UA source: one server (one "PLC"), its bindings, one owner of the connection.

Each session: connect (security as the plant model says, the server's certificate checked
against the trust store), resolve namespace indexes anew, create one subscription with the
bindings' monitored items in batches within the server's limits plus a heartbeat item on
Server/ServerStatus/CurrentTime, then read the gap since the last value of each historised
node with HistoryRead. Values go to the pipeline without waiting (a blocking data-change
handler kills the client). The session ends when the server stops answering (no publish
response for `heartbeat_timeout_s`, the subscription dies, or asyncua's watchdog reports a
lost connection); the session is closed (no leaked sessions) and the loop reconnects with
capped, jittered back-off. asyncua's own auto-reconnect stays off: two reconnect loops leak
sessions (BadTooManySessions).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from asyncua import Client, ua

from collector.contracts import Binding, DeadLetter, Plant, Reading
from collector.contracts.plant import OpcUaSource
from collector.pipeline.batch import Batch
from collector.sources.backoff import Backoff
from collector.sources.health import SourceHealth
from collector.sources.opcua import history
from collector.sources.opcua.addresses import AddressError, resolve
from collector.sources.opcua.bulk_subscription import BulkSubscription
from collector.sources.opcua.gaps import GapTracker
from collector.sources.opcua.pki import (
    Pki,
    UntrustedServerCertificate,
    choose_endpoint,
    secure_client,
)
from collector.sources.opcua.settings import OpcUaSettings
from collector.sources.opcua.values import to_reading

log = logging.getLogger(__name__)
HEARTBEAT_NODE = ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime)
# (asset, signal) → time of the newest value stored, for backfill after a restart
ResumePoints = Callable[[Sequence[tuple[str, str]]], Awaitable[dict[tuple[str, str], datetime]]]


class Sink(Protocol):
    def offer(self, batch: Batch) -> None: ...

    async def submit(self, batch: Batch) -> None: ...

    async def room(self, timeout_s: float) -> bool: ...


class SessionLost(ConnectionError):
    pass


@dataclass(slots=True)
class _Target:
    binding: Binding
    node_id: ua.NodeId
    origin: str


class OpcUaCollectorSource:
    def __init__(self, plant: Plant, source: OpcUaSource, sink: Sink,
                 settings: OpcUaSettings | None = None, resume: ResumePoints | None = None,
                 endpoint: str | None = None) -> None:
        self.plant, self.source, self.sink = plant, source, sink
        self.settings = settings or OpcUaSettings()
        self.resume = resume
        self.endpoint = endpoint or source.endpoint
        self.bindings = [b for b in plant.bindings() if b.source == source.id]
        self.health = SourceHealth(source.id, "opcua", self.endpoint)
        self.pki = Pki(self.settings.pki_dir)
        self.gaps = GapTracker()  # where each node's data is complete: backfills start there
        self._targets: dict[int, _Target] = {}
        self._catch_up: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._heartbeat_handle = 0
        self.sessions_opened = 0
        self.sessions_closed = 0

    # --- the connection loop ----------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled: connect, collect, and reconnect whenever the session is lost."""
        backoff = Backoff(1.0, self.settings.reconnect_max_delay_s)
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except UntrustedServerCertificate as exc:
                self._down(str(exc), quiet_repeat=True)
            except (OSError, TimeoutError, ua.UaError, AddressError, ConnectionError) as exc:
                self._down(_describe(exc))
            except Exception as exc:  # a bug, not a plant fault: keep running, but say so
                log.exception("OPC UA source %s failed unexpectedly", self.source.id)
                self._down(_describe(exc))
            if time.monotonic() - started > 60:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    def _down(self, error: str, quiet_repeat: bool = False) -> None:
        repeat = error == self.health.last_error
        self.health.went_down(error)
        if not (repeat and quiet_repeat):
            log.warning("OPC UA source %s (%s) is down: %s", self.source.id, self.endpoint,
                        error)

    async def _session(self) -> None:
        client = await self._client()
        self._lost.clear()
        opened = False
        try:
            await client.connect()
            opened = True
            self.sessions_opened += 1
            namespaces = await client.get_namespace_array()
            self._resolve(namespaces)
            # where the gap starts is fixed before the subscription delivers anything newer
            starts = await self._gap_starts()
            self.gaps.session_started()
            subscription = await self._subscribe(client)
            self.health.went_up()
            log.info("OPC UA source %s connected to %s: %d monitored items", self.source.id,
                     self.endpoint, len(self._targets))
            if await self._backfill(client, starts):
                self.gaps.backfilled()
            await self._watch(client, subscription)
        finally:
            if self._catch_up is not None:
                self._catch_up.cancel()
            if opened:
                await self._close(client)

    async def _client(self) -> Client:
        s = self.settings
        client = Client(self.endpoint, timeout=s.request_timeout_s,
                        watchdog_intervall=max(1.0, s.heartbeat_timeout_s / 2))
        client.session_timeout = int(s.session_timeout_s * 1000)
        client.connection_lost_callback = self._on_connection_lost
        if self.source.security != "none":
            probe = Client(self.endpoint, timeout=s.request_timeout_s)
            endpoints = await probe.connect_and_get_server_endpoints()
            chosen = choose_endpoint(endpoints, self.source.security)
            await secure_client(client, chosen, self.pki, s.username, s.password)
        elif s.username:
            client.set_user(s.username)
            client.set_password(s.password or "")
        return client

    async def _close(self, client: Client) -> None:
        try:
            await asyncio.wait_for(client.disconnect(), self.settings.request_timeout_s)
            self.sessions_closed += 1
        except Exception as exc:  # the connection may be gone already; the server expires it
            log.debug("closing the session with %s: %s", self.endpoint, exc)

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._lost.set()

    # --- subscription -----------------------------------------------------------------------
    def _resolve(self, namespaces: list[str]) -> None:
        self._targets.clear()
        letters: list[DeadLetter] = []
        for handle, b in enumerate(self.bindings, start=1):
            origin = f"opcua:{self.source.id}:{b.address}"
            try:
                node_id = resolve(b.address, self.source.namespace, namespaces)
            except AddressError as exc:
                if b.address.startswith("nsu=") or self.source.namespace in namespaces:
                    letters.append(DeadLetter(origin, f"binding not collected: {exc}",
                                              detail={"asset": b.asset, "signal": b.signal}))
                    continue
                raise  # the source's own namespace is missing: nothing can be collected
            self._targets[handle] = _Target(b, node_id, origin)
        self._heartbeat_handle = len(self.bindings) + 1
        if letters:
            self.health.dead_letters += len(letters)
            self.sink.offer(Batch(self.source.id, dead_letters=letters))

    async def _subscribe(self, client: Client) -> BulkSubscription:
        s, src = self.settings, self.source
        keepalive = max(1, int(s.heartbeat_timeout_s * 1000 / 3 / src.publishing_interval_ms))
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=src.publishing_interval_ms,
            RequestedLifetimeCount=keepalive * 4, RequestedMaxKeepAliveCount=keepalive,
            MaxNotificationsPerPublish=10_000, PublishingEnabled=True, Priority=0)
        # wait for room at most a third of the heartbeat: keep-alives must keep coming
        pace_s = s.heartbeat_timeout_s / 3
        subscription = BulkSubscription(client.uaclient.session, params, self._on_items,
                                        self._on_status, lambda: self.sink.room(pace_s))
        await subscription.init()
        limit = ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
        per_call = min(s.max_items_per_call, await history.server_limit(client, limit))
        requests = [self._item(handle, t) for handle, t in self._targets.items()]
        requests.append(_request(self._heartbeat_handle, HEARTBEAT_NODE, 1000.0, 1, None))
        refused: list[DeadLetter] = []
        for i in range(0, len(requests), per_call):
            chunk = requests[i:i + per_call]
            results = await subscription.create_monitored_items(chunk)
            for request, result in zip(chunk, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    handle = request.RequestedParameters.ClientHandle
                    refused.append(self._refused(handle, result))
        if refused:
            log.warning("OPC UA source %s: the server refused %d of %d monitored items, e.g. "
                        "%s", self.source.id, len(refused), len(requests), refused[0].reason)
            self.health.dead_letters += len(refused)
            self.sink.offer(Batch(self.source.id, dead_letters=refused))
        return subscription

    def _item(self, handle: int, target: _Target) -> ua.MonitoredItemCreateRequest:
        b, src = target.binding, self.source
        sampling = b.sampling_interval_ms if b.sampling_interval_ms is not None \
            else src.sampling_interval_ms
        queue = b.queue_size or src.queue_size
        deadband = None
        if b.deadband is not None:
            deadband = (ua.DeadbandType.Absolute, b.deadband)
        elif b.deadband_pct is not None:
            deadband = (ua.DeadbandType.Percent, b.deadband_pct)
        return _request(handle, target.node_id, sampling, queue, deadband)

    def _refused(self, handle: int, status: ua.StatusCode) -> DeadLetter:
        target = self._targets.pop(handle, None)
        if target is None:  # the heartbeat item: a server without CurrentTime
            return DeadLetter(f"opcua:{self.source.id}", f"heartbeat item refused: {status.name}")
        b = target.binding
        return DeadLetter(target.origin, f"the server refused to monitor {b.address}: "
                          f"{status.name}", detail={"asset": b.asset, "signal": b.signal})

    def _on_items(self, items: list[ua.MonitoredItemNotification]) -> None:
        """In the client's event loop, once per publish response: never blocks."""
        received = datetime.now(UTC)
        batch = Batch(self.source.id, received_at=received.timestamp())
        for item in items:
            target = self._targets.get(item.ClientHandle)
            if target is None:
                continue  # the heartbeat (its arrival is what counts) or a removed item
            out = to_reading(target.binding, item.Value, target.origin, received)
            if isinstance(out, Reading):
                batch.readings.append(out)
            else:
                batch.dead_letters.append(out)
        if len(batch):
            readings = batch.readings
            self.gaps.seen(readings)
            batch.on_dropped = lambda: self.gaps.dropped(readings)
            self.health.readings += len(batch.readings)
            self.health.dead_letters += len(batch.dead_letters)
            self.health.last_value_at = received.timestamp()
            self.sink.offer(batch)

    def _on_status(self, status: ua.StatusChangeNotification) -> None:
        log.warning("OPC UA source %s: subscription status %s", self.source.id,
                    status.Status.name)
        if status.Status.is_bad():
            self._lost.set()

    async def _watch(self, client: Client, subscription: BulkSubscription) -> None:
        limit = self.settings.heartbeat_timeout_s
        while True:
            if self.gaps.holes and (self._catch_up is None or self._catch_up.done()):
                self._catch_up = asyncio.create_task(self._fill_holes(client))
            try:
                await asyncio.wait_for(self._lost.wait(), timeout=1.0)
                raise SessionLost("the server closed the connection or the subscription")
            except TimeoutError:
                pass
            silent = time.monotonic() - subscription.last_message_at
            if silent > limit:
                raise SessionLost(f"no data or keep-alive from the server for {silent:.0f} s")

    # --- history ----------------------------------------------------------------------------
    async def _gap_starts(self) -> dict[tuple[str, str], datetime]:
        """Where this session's backfill starts, per key. After a restart: the newest sample
        in the store (asked once; if the store is down, the next session asks again)."""
        if self.gaps.resume_from is None and self.resume is not None:
            keys = [(t.binding.asset, t.binding.signal) for t in self._targets.values()]
            try:
                self.gaps.load(await self.resume(keys))
            except Exception as exc:  # the database may be down: fall back, never stop
                log.warning("OPC UA source %s: no resume points from the database (%s); "
                            "backfilling %.0f s", self.source.id, exc,
                            self.settings.backfill_unknown_s)
        return self.gaps.starts()

    async def _backfill(self, client: Client, since: dict[tuple[str, str], datetime],
                        handles: set[int] | None = None) -> bool:
        """Read what the server recorded while we were away: per historised node, from the
        start of its gap to its current value (the subscription delivers what comes after).
        False if it failed — the session goes on; the next one tries again from there."""
        if self.settings.backfill_max_s <= 0 or not self._targets:
            return True
        targets = {h: t for h, t in self._targets.items() if handles is None or h in handles}
        nodes = {h: t.node_id for h, t in targets.items()}
        try:
            limits = await history.Limits.of(client)
            # windows on the node's own clock (its current source time), not ours: a PLC's
            # clock may be off, and a simulated plant runs on simulated time
            current = await history.current_source_times(client, nodes, limits)
            max_gap = timedelta(seconds=self.settings.backfill_max_s)
            unknown = timedelta(seconds=self.settings.backfill_unknown_s)
            starts: dict[int, datetime] = {}
            for handle, target in targets.items():
                now = current.get(handle)
                if now is None:
                    continue
                start = max(now - max_gap, since.get((target.binding.asset,
                                                      target.binding.signal), now - unknown))
                if start < now:
                    starts[handle] = start
            if not starts:
                return True
            end = max(current[h] for h in starts)
            recovered = await history.backfill(client, {h: nodes[h] for h in starts}, starts,
                                               end, self._history_batch, limits)
        except (OSError, TimeoutError, ua.UaError, ConnectionError) as exc:
            log.warning("OPC UA source %s: backfill failed (%s); the next session tries again",
                        self.source.id, _describe(exc))
            return False
        if recovered:
            self.health.backfilled += recovered
            log.info("OPC UA source %s: backfilled %d values from the server's history",
                     self.source.id, recovered)
        return True

    async def _fill_holes(self, client: Client) -> None:
        """Values the pipeline had to drop: read them again from the server's history."""
        holes = dict(self.gaps.holes)
        keys = {(t.binding.asset, t.binding.signal): h for h, t in self._targets.items()}
        handles = {keys[key] for key in holes if key in keys}
        # a microsecond before the first dropped value: backfill reads after its start
        since = {key: when - timedelta(microseconds=1) for key, when in holes.items()}
        await asyncio.sleep(self.settings.heartbeat_timeout_s)  # let the pipeline breathe
        if await self._backfill(client, since, handles):
            self.gaps.filled(holes)

    async def _history_batch(self, handle: int, values: list[ua.DataValue]) -> int:
        target = self._targets[handle]
        received = datetime.now(UTC)
        batch = Batch(self.source.id, received_at=received.timestamp())
        for value in values:
            out = to_reading(target.binding, value, target.origin, received)
            if isinstance(out, Reading):
                batch.readings.append(out)
            else:
                batch.dead_letters.append(out)
        if len(batch):
            await self.sink.submit(batch)
        return len(batch.readings)


def _request(handle: int, node_id: ua.NodeId, sampling_ms: float, queue_size: int,
             deadband: tuple[ua.DeadbandType, float] | None) -> ua.MonitoredItemCreateRequest:
    if deadband is None:
        # a sample that repeats the last value at a new source time is still a sample
        flt = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
    else:
        flt = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValue,
                                  DeadbandType=deadband[0].value, DeadbandValue=deadband[1])
    parameters = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=sampling_ms,
                                         QueueSize=queue_size, DiscardOldest=True, Filter=flt)
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=parameters)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and the endpoint right?)"
    if isinstance(exc, TimeoutError) and not text:
        return "no answer in time"
    return f"{name}: {text}" if text and name not in text else text or name
