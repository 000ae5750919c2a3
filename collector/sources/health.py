"""What each source reports about itself, for /health and /metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class SourceHealth:
    source: str
    protocol: str
    endpoint: str
    up: bool = False
    since: float = field(default_factory=time.time)   # when `up` last changed (wall clock)
    last_error: str = ""
    connects: int = 0          # successful (re)connections
    reconnects: int = 0        # connections after a loss
    readings: int = 0          # handed to the pipeline
    dead_letters: int = 0      # made by the source (undecodable, unknown, wrong type)
    backfilled: int = 0        # OPC UA: readings recovered with HistoryRead
    last_value_at: float | None = None

    def went_up(self) -> None:
        if self.connects:
            self.reconnects += 1
        self.connects += 1
        self.up, self.since, self.last_error = True, time.time(), ""

    def went_down(self, error: str) -> None:
        if self.up:
            self.since = time.time()
        self.up, self.last_error = False, error
