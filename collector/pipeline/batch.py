"""Batch: what a source hands to the pipeline in one go — readings, material events and dead
letters from one message or one notification burst — and how the source learns it is durable.

`on_durable` is called (once, from the pipeline's task) when everything in the batch is in
the database or in the spool: the MQTT source acknowledges the message to the broker then,
never before. A batch that could not be made durable is never acknowledged. `on_dropped` is
called instead when the pipeline had to drop a batch nobody waits for (queue and spool full):
the OPC UA source then reads that stretch again from the server's history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.contracts import DeadLetter, MaterialEvent, Reading


@dataclass(slots=True)
class Batch:
    source: str                                   # source id from the plant model
    readings: list[Reading] = field(default_factory=list)
    events: list[MaterialEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    received_at: float = field(default_factory=time.time)  # wall clock, for latency
    on_durable: Callable[[], None] | None = None
    on_dropped: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self.readings) + len(self.events) + len(self.dead_letters)
