"""Records an OPC UA server: browses its Objects for variables (with their metadata), then
subscribes to all of them and keeps every DataValue a notification brings."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from asyncua import Client, Node, ua

from simulators.opcua.device import EngineeringUnit, VariableSpec
from simulators.recording.opcua_codec import channel_name, encode

log = logging.getLogger(__name__)
MAX_DEPTH, MAX_VARIABLES = 12, 50_000
ITEMS_PER_CALL = 500  # monitored items per CreateMonitoredItems request
QUEUE_SIZE = 10_000   # per item: an accelerated simulator writes far faster than we publish

Sink = Callable[[str, str, bytes], None]  # (endpoint, channel name, DataValue binary)


class _Notifications:
    def __init__(self, endpoint: str, names: dict[Any, str], sink: Sink) -> None:
        self.endpoint, self.names, self.sink = endpoint, names, sink

    def datachange_notification(self, node: Node, val: object, data: Any) -> None:
        self.sink(self.endpoint, self.names[node.nodeid], encode(data.monitored_item.Value))


class OpcUaRecorder:
    def __init__(self, endpoint: str, sink: Sink) -> None:
        self.endpoint, self.sink = endpoint, sink
        self.client = Client(endpoint, timeout=30)
        self.variables: list[tuple[Node, VariableSpec]] = []

    async def browse(self, wait_s: float = 30.0) -> list[VariableSpec]:
        """Connect (waiting up to `wait_s` for the server to come up) and find the server's
        variables; call `subscribe` next."""
        await self._connect(wait_s)
        namespaces = await self.client.get_namespace_array()
        await self._browse(self.client.nodes.objects, (), namespaces, 0)
        return [spec for _, spec in self.variables]

    async def _connect(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                await self.client.connect()
                return
            except (TimeoutError, OSError, ua.UaError) as exc:
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"cannot reach the OPC UA server at {self.endpoint} "
                                          f"within {wait_s:g} s: {exc or type(exc).__name__}"
                                          ) from None
                await asyncio.sleep(0.5)

    async def subscribe(self) -> None:
        names = {node.nodeid: channel_name(spec.namespace, spec.identifier)
                 for node, spec in self.variables}
        subscription = await self.client.create_subscription(
            100, _Notifications(self.endpoint, names, self.sink))
        requests = [_monitor(node, handle) for handle, (node, _) in enumerate(self.variables, 1)]
        for i in range(0, len(requests), ITEMS_PER_CALL):
            for result in await subscription.create_monitored_items(
                    requests[i:i + ITEMS_PER_CALL]):
                if isinstance(result, ua.StatusCode):
                    log.warning("%s refused a monitored item: %s", self.endpoint, result.name)
        log.info("recording %d OPC UA variables of %s", len(requests), self.endpoint)

    async def stop(self) -> None:
        await self.client.disconnect()

    async def _browse(self, node: Node, path: tuple[str, ...], namespaces: list[str],
                      depth: int) -> None:
        if depth > MAX_DEPTH or len(self.variables) >= MAX_VARIABLES:
            return
        for ref in await node.get_references(refs=ua.ObjectIds.HierarchicalReferences,
                                             direction=ua.BrowseDirection.Forward):
            if ref.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasProperty):
                continue
            child = self.client.get_node(ref.NodeId)
            if child.nodeid.NamespaceIndex == 0:
                continue  # the Server object and the standard types are not the plant
            child_path = (*path, ref.BrowseName.Name)
            if ref.NodeClass == ua.NodeClass.Variable:
                self.variables.append((child, await self._spec(child, child_path, namespaces)))
            elif ref.NodeClass == ua.NodeClass.Object:
                await self._browse(child, child_path, namespaces, depth + 1)

    async def _spec(self, node: Node, path: tuple[str, ...],
                    namespaces: list[str]) -> VariableSpec:
        properties = {p.BrowseName.Name: p for p in
                      await node.get_references(refs=ua.ObjectIds.HasProperty)}
        unit = eu_range = None
        if "EngineeringUnits" in properties:
            eu = await self.client.get_node(properties["EngineeringUnits"].NodeId).read_value()
            unit = EngineeringUnit(eu.NamespaceUri, eu.UnitId, eu.DisplayName.Text or "",
                                   eu.Description.Text or "")
        if "EURange" in properties:
            r = await self.client.get_node(properties["EURange"].NodeId).read_value()
            eu_range = (float(r.Low), float(r.High))
        data_type = await node.read_data_type_as_variant_type()
        description = (await node.read_description()).Text or ""
        historizing = await node.read_attribute(ua.AttributeIds.Historizing)
        identifier = node.nodeid.to_string().split(";", 1)[-1]
        return VariableSpec(namespace=namespaces[node.nodeid.NamespaceIndex],
                            identifier=identifier, browse_path=path, description=description,
                            unit=unit, eu_range=eu_range, variant_type=data_type.name,
                            historizing=bool(historizing.Value.Value))


def _monitor(node: Node, handle: int) -> ua.MonitoredItemCreateRequest:
    """Every sample: sampling interval 0 (as fast as the server changes it), a deep queue, and
    the StatusValueTimestamp trigger, so a sample repeating the last value is still recorded."""
    parameters = ua.MonitoringParameters(
        ClientHandle=handle, SamplingInterval=0, QueueSize=QUEUE_SIZE, DiscardOldest=True,
        Filter=ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp))
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node.nodeid, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=parameters)
