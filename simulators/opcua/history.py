"""History for the simulated servers: what a PLC's historian would give a client that asks
HistoryRead for a gap.

asyncua's own historising subscribes to every node and deep-copies each DataValue on the way
(≈ 45 deepcopy calls per write); at a plant's volume that was most of a simulated day's wall
time. The device saves each written value here directly instead. Like the subscription it
replaces, it keeps a value when its value or status changed (the StatusValue trigger of
OPC UA Part 4, 7.22.2), a bounded number per node.
"""

from __future__ import annotations

import collections
from typing import Any

from asyncua import ua
from asyncua.server.history import HistoryDict


class SampleHistory(HistoryDict):  # type: ignore[misc]  # asyncua is untyped here
    def __init__(self, values_per_node: int) -> None:
        super().__init__()
        self.values_per_node = values_per_node

    async def new_historized_node(self, node_id: ua.NodeId, period: Any = None,
                                  count: int = 0) -> None:
        if node_id in self._datachanges:
            return  # a restarted server: the history recorded so far stays
        # HistoryDict reads iterate and reverse these, which a deque does as well as a list
        self._datachanges[node_id] = collections.deque(maxlen=count or self.values_per_node)
        self._datachanges_period[node_id] = None, count

    def has_values(self, node_id: ua.NodeId) -> bool:
        return bool(self._datachanges.get(node_id))

    async def save_node_value(self, node_id: ua.NodeId, datavalue: ua.DataValue) -> None:
        self.save(node_id, datavalue)

    def save(self, node_id: ua.NodeId, value: ua.DataValue) -> None:
        values = self._datachanges[node_id]
        if values:
            last = values[-1]
            if last.StatusCode == value.StatusCode and last.Value == value.Value:
                return
        values.append(value)
