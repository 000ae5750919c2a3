"""Backfill: read the gap from the server's history (HistoryRead, ReadRawModifiedDetails —
the standard service any historising server offers), batched and following continuation
points, for the nodes whose Historizing attribute is true."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from asyncua import Client, ua

log = logging.getLogger(__name__)
NODES_PER_READ = 100        # nodes per HistoryRead request, unless the server allows fewer
VALUES_PER_NODE = 1_000     # per node per response; the rest comes by continuation point
ATTRIBUTES_PER_READ = 1_000
# the OperationLimits a server may publish (OPC UA Part 5, 6.3.11)
_LIMITS = "Server_ServerCapabilities_OperationLimits_"
_PER_READ: int = getattr(ua.ObjectIds, _LIMITS + "MaxNodesPerRead")
_PER_HISTORY_READ: int = getattr(ua.ObjectIds, _LIMITS + "MaxNodesPerHistoryReadData")


@dataclass(frozen=True)
class Limits:
    nodes_per_read: int
    nodes_per_history_read: int

    @classmethod
    async def of(cls, client: Client) -> Limits:
        return cls(min(ATTRIBUTES_PER_READ, await server_limit(client, _PER_READ)),
                   min(NODES_PER_READ, await server_limit(client, _PER_HISTORY_READ)))


async def server_limit(client: Client, node: int) -> int:
    """A limit the server publishes; 0 or none at all means no limit."""
    try:
        value = await client.get_node(ua.NodeId(node)).read_value()
    except (ua.UaError, TimeoutError):
        return 1 << 30
    return int(value) if isinstance(value, int) and value > 0 else 1 << 30


# (client handle, values in time order) → readings handed on
Deliver = Callable[[int, list[ua.DataValue]], Awaitable[int]]


async def historised(client: Client, nodes: dict[int, ua.NodeId], limits: Limits) -> list[int]:
    handles = list(nodes)
    out: list[int] = []
    for i in range(0, len(handles), limits.nodes_per_read):
        chunk = handles[i:i + limits.nodes_per_read]
        values = await client.uaclient.read_attributes([nodes[h] for h in chunk],
                                                        ua.AttributeIds.Historizing)
        out += [h for h, v in zip(chunk, values, strict=True)
                if v.StatusCode is not None and v.StatusCode.is_good()
                and v.Value is not None and v.Value.Value is True]
    return out


async def current_source_times(client: Client, nodes: dict[int, ua.NodeId], limits: Limits
                               ) -> dict[int, datetime]:
    """Each node's current value's source time (else server time): where its gap ends."""
    handles = list(nodes)
    out: dict[int, datetime] = {}
    for i in range(0, len(handles), limits.nodes_per_read):
        chunk = handles[i:i + limits.nodes_per_read]
        values = await client.uaclient.read_attributes([nodes[h] for h in chunk],
                                                        ua.AttributeIds.Value)
        for handle, value in zip(chunk, values, strict=True):
            when = value.SourceTimestamp or value.ServerTimestamp
            if when is not None:
                out[handle] = when
    return out


async def backfill(client: Client, nodes: dict[int, ua.NodeId], starts: dict[int, datetime],
                   end: datetime, deliver: Deliver, limits: Limits) -> int:
    """Every value after `starts[handle]` up to `end` of the historised nodes; returns how
    many readings were delivered."""
    handles = sorted(await historised(client, nodes, limits), key=lambda h: starts[h])
    delivered = 0
    for i in range(0, len(handles), limits.nodes_per_history_read):
        chunk = handles[i:i + limits.nodes_per_history_read]
        start = min(starts[h] for h in chunk)  # one time range per request (Part 11, 6.4.3)
        details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=start, EndTime=end,
                                            NumValuesPerNode=VALUES_PER_NODE, ReturnBounds=False)
        pending: dict[int, bytes | None] = {h: None for h in chunk}
        while pending:
            params = ua.HistoryReadParameters(
                HistoryReadDetails=details, TimestampsToReturn=ua.TimestampsToReturn.Both,
                ReleaseContinuationPoints=False,
                NodesToRead=[ua.HistoryReadValueId(NodeId=nodes[h], ContinuationPoint=cp)
                             for h, cp in pending.items()])
            results = await client.uaclient.history_read(params)
            following: dict[int, bytes | None] = {}
            for handle, result in zip(pending, results, strict=True):
                if not result.StatusCode.is_good():
                    log.info("no history for %s: %s", nodes[handle], result.StatusCode.name)
                    continue
                # a HistoryData structure (Part 11, 6.5.2); anything else carries no values
                raw = getattr(result.HistoryData, "DataValues", None) or []
                values = [v for v in raw
                          if v.SourceTimestamp is None or v.SourceTimestamp > starts[handle]]
                if values:
                    delivered += await deliver(handle, values)
                if result.ContinuationPoint:
                    following[handle] = result.ContinuationPoint
            pending = following
    return delivered
