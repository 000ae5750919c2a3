"""A simulated OPC UA device: an asyncua server whose address space is a list of variables
(`VariableSpec`), written value by value with source and server timestamps and status codes,
historised, optionally secured, and optionally misbehaving (chaos: dropped connections).

The PLCs of the simulated plant (`plc.py`) and the replay of a recording (`simulators.replay`)
are both built on it: one from the plant model, the other from what a recording saw.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from asyncua import Node, ua

from simulators.opcua.history import SampleHistory
from simulators.opcua.security import OpcUaSecurity, apply_security, server_with_security

log = logging.getLogger(__name__)
HISTORY_VALUES_PER_NODE = 20_000


@dataclass(frozen=True)
class EngineeringUnit:
    """EUInformation (OPC UA Part 8): the unit's namespace, UNECE id and display name."""

    namespace_uri: str
    unit_id: int
    display_name: str
    description: str = ""

    def to_ua(self) -> ua.EUInformation:
        return ua.EUInformation(NamespaceUri=self.namespace_uri, UnitId=self.unit_id,
                                DisplayName=ua.LocalizedText(self.display_name),
                                Description=ua.LocalizedText(self.description))


@dataclass(frozen=True)
class VariableSpec:
    """One variable of a device: its NodeId (namespace URI + identifier in the text form of
    OPC UA Part 6, e.g. `s=reduction/furnace-01/retort-07.vacuum_pa` or `i=1001`), the browse
    names of the folders above it and of itself (all in the variable's namespace), and its
    metadata."""

    namespace: str
    identifier: str
    browse_path: tuple[str, ...]
    description: str = ""
    unit: EngineeringUnit | None = None
    eu_range: tuple[float, float] | None = None
    variant_type: str = "Double"
    historizing: bool = True


@dataclass(frozen=True)
class OpcUaChaos:
    """Misbehaviour of a device, as Microsoft's OPC PLC offers it: every `drop_connections_s`
    wall seconds every client connection is cut (its session is lost and the client must
    reconnect and recreate its subscriptions)."""

    drop_connections_s: float = 0.0


@dataclass
class DeviceStats:
    writes: int = 0
    dropped_connections: int = 0
    rejected_writes: dict[str, int] = field(default_factory=dict)


class OpcUaDevice:
    """`await start()`, then `await write(spec, value)`, `await stop()`."""

    def __init__(self, endpoint: str, name: str, application_uri: str,
                 variables: list[VariableSpec], security: OpcUaSecurity | None = None,
                 chaos: OpcUaChaos | None = None, initial_time: datetime | None = None) -> None:
        self.initial_time = initial_time  # source time of "waiting for initial data"
        self.endpoint, self.name, self.application_uri = endpoint, name, application_uri
        self.variables = variables
        self.security = security or OpcUaSecurity()
        self.chaos = chaos or OpcUaChaos()
        self.server = server_with_security(self.security)  # a new one at every start
        self.history = SampleHistory(HISTORY_VALUES_PER_NODE)  # outlives server restarts
        self.stats = DeviceStats()
        self.node_ids: dict[tuple[str, str], ua.NodeId] = {}  # (namespace, identifier) → id
        self._historised: set[ua.NodeId] = set()
        self._chaos_task: asyncio.Task[None] | None = None
        self._address_space: Any = None  # the server's, while it runs
        self._started_once = False

    @property
    def running(self) -> bool:
        return self._address_space is not None

    async def start(self) -> None:
        """Start serving; after a `stop()`, a new server with the same address space and the
        history kept meanwhile (a PLC whose OPC UA server restarts while its logic runs)."""
        if self._started_once:
            self.server = server_with_security(self.security)
        self._started_once = True
        server = self.server
        await server.init()
        server.iserver.history_manager.set_storage(self.history)
        server.set_endpoint(self.endpoint)
        server.set_server_name(self.name)
        await server.set_application_uri(self.application_uri)
        await apply_security(server, self.security, _file_name(self.application_uri),
                             self.application_uri, urlparse(self.endpoint).hostname or "127.0.0.1")
        namespaces = {v.namespace: 0 for v in self.variables}
        for uri in namespaces:
            namespaces[uri] = await server.register_namespace(uri)
        await self._build(namespaces)
        await server.start()
        self._address_space = server.iserver.aspace
        if self.chaos.drop_connections_s > 0:
            self._chaos_task = asyncio.create_task(self._drop_connections_forever())
        log.info("OPC UA device %s serving %d variables at %s", self.name, len(self.node_ids),
                 self.endpoint)

    async def stop(self) -> None:
        if self._chaos_task is not None:
            self._chaos_task.cancel()
        self._address_space = None
        await self.server.stop()

    async def write(self, node_id: ua.NodeId, value: ua.DataValue) -> None:
        """Set the variable's value as the device's sensor/PLC logic would, and historise it
        (only historise it while the server is stopped)."""
        status = ua.StatusCode() if self._address_space is None else \
            await self._address_space.write_attribute_value(node_id, ua.AttributeIds.Value,
                                                            value)
        if not status.is_good():  # e.g. BadTypeMismatch: counted, never a crash
            reason = status.name
            self.stats.rejected_writes[reason] = self.stats.rejected_writes.get(reason, 0) + 1
            return
        if value.StatusCode is not None and value.StatusCode.is_bad():
            value = ua.DataValue(ua.Variant(), value.StatusCode, value.SourceTimestamp,
                                 value.ServerTimestamp, value.SourcePicoseconds,
                                 value.ServerPicoseconds)  # Part 4 7.7.1: Bad has no value
        if node_id in self._historised:
            self.history.save(node_id, value)
        self.stats.writes += 1

    def calm(self) -> None:
        """End the chaos (connections stay up from now on)."""
        if self._chaos_task is not None:
            self._chaos_task.cancel()
            self._chaos_task = None

    def drop_connections(self) -> int:
        """Cut every client connection abruptly, as a network or PLC fault would."""
        transports = list(self.server.iserver.asyncio_transports)
        for transport in transports:
            transport.abort()
        self.stats.dropped_connections += len(transports)
        return len(transports)

    async def _drop_connections_forever(self) -> None:
        while True:
            await asyncio.sleep(self.chaos.drop_connections_s)
            dropped = self.drop_connections()
            if dropped:
                log.info("chaos: %s dropped %d client connection(s)", self.name, dropped)

    async def _build(self, namespaces: dict[str, int]) -> None:
        folders: dict[tuple[int, tuple[str, ...]], Node] = {}
        for spec in self.variables:
            ns = namespaces[spec.namespace]
            parent = await self._folder(folders, ns, spec.browse_path[:-1])
            node_id = ua.NodeId.from_string(f"ns={ns};{spec.identifier}")
            variant_type = ua.VariantType[spec.variant_type]
            var = await parent.add_variable(node_id, ua.QualifiedName(spec.browse_path[-1], ns),
                                            ua.Variant(None, ua.VariantType.Null),
                                            varianttype=variant_type,
                                            datatype=ua.NodeId(variant_type.value))
            initial = ua.DataValue(
                ua.Variant(), StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData),
                SourceTimestamp=self.initial_time, ServerTimestamp=datetime.now(UTC))
            await self.server.write_attribute_value(node_id, initial)
            if spec.unit is not None:
                await var.add_property(0, "EngineeringUnits", spec.unit.to_ua())
            if spec.eu_range is not None:
                await var.add_property(0, "EURange", ua.Range(*spec.eu_range))
            if spec.description:
                await var.write_attribute(ua.AttributeIds.Description, ua.DataValue(
                    ua.Variant(ua.LocalizedText(spec.description))))
            if spec.historizing:
                await self._historise(var)
                if self.initial_time is not None and not self.history.has_values(node_id):
                    self.history.save(node_id, initial)
            self.node_ids[(spec.namespace, spec.identifier)] = node_id

    async def _historise(self, var: Node) -> None:
        await var.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(True))
        await var.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
        await var.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
        await self.history.new_historized_node(var.nodeid)
        self._historised.add(var.nodeid)

    async def _folder(self, folders: dict[tuple[int, tuple[str, ...]], Node], ns: int,
                      path: tuple[str, ...]) -> Node:
        if not path:
            return self.server.nodes.objects
        key = (ns, path)
        if key not in folders:
            parent = await self._folder(folders, ns, path[:-1])
            folders[key] = await parent.add_object(ua.NodeId("/".join(path), ns),
                                                   ua.QualifiedName(path[-1], ns))
        return folders[key]


def _file_name(application_uri: str) -> str:
    """One certificate per application URI (the certificate names it): a file name for it."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", application_uri)
