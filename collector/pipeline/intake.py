"""The bounded queue between the sources and the writer, counted in readings.

Two ways in, because the two protocols can be held back differently:
- `submit` (MQTT) waits while the queue is full: the paho thread stops reading, the broker
  keeps the messages (QoS 1, persistent session) — back-pressure without loss;
- `offer` (OPC UA) never waits: a data-change handler that blocks kills the asyncua client's
  loop. Past the soft limit it still queues, up to a hard limit (twice the soft one); beyond
  that the batch is refused and counted as dropped — the source can backfill the gap from the
  server's history.
"""

from __future__ import annotations

import asyncio
import collections
import time

from collector.pipeline.batch import Batch


class Intake:
    def __init__(self, max_readings: int) -> None:
        self.max_readings = max_readings
        self.hard_limit = 2 * max_readings
        self._batches: collections.deque[Batch] = collections.deque()
        self._readings = 0
        self._not_empty = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.dropped_readings = 0

    @property
    def readings(self) -> int:
        return self._readings

    def __len__(self) -> int:
        return len(self._batches)

    async def submit(self, batch: Batch) -> None:
        while self._readings and self._readings + len(batch) > self.max_readings:
            self._room.clear()
            await self._room.wait()
        self._put(batch)

    async def room(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until the queue is below its soft limit; False if not.
        How an OPC UA source that must not block still slows down: it delays its next
        Publish request, and the server holds the values in its queues meanwhile."""
        if self._readings < self.max_readings:
            return True
        self._room.clear()
        try:
            await asyncio.wait_for(self._room.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def offer(self, batch: Batch) -> bool:
        if self._readings and self._readings + len(batch) > self.hard_limit:
            self.dropped_readings += len(batch.readings)
            return False
        self._put(batch)
        return True

    def _put(self, batch: Batch) -> None:
        self._batches.append(batch)
        self._readings += len(batch)
        self._not_empty.set()

    async def take(self, max_readings: int, max_wait_s: float) -> list[Batch]:
        """The oldest batches, up to `max_readings` (at least one batch): as soon as that many
        are queued, or `max_wait_s` after the first one was seen; [] if none came."""
        if not self._batches:
            self._not_empty.clear()
            try:
                await asyncio.wait_for(self._not_empty.wait(), max_wait_s)
            except TimeoutError:
                return []
        deadline = time.monotonic() + max_wait_s
        while self._readings < max_readings and (left := deadline - time.monotonic()) > 0:
            self._not_empty.clear()
            try:
                await asyncio.wait_for(self._not_empty.wait(), left)
            except TimeoutError:
                break
        return self.take_now(max_readings)

    def take_now(self, max_readings: int) -> list[Batch]:
        out: list[Batch] = []
        taken = 0
        while self._batches and (not out or taken + len(self._batches[0]) <= max_readings):
            batch = self._batches.popleft()
            taken += len(batch)
            out.append(batch)
        self._readings -= taken
        if self._readings < self.max_readings:
            self._room.set()
        return out

    def put_back(self, batches: list[Batch]) -> None:
        """Return batches that could not be made durable to the front, in order."""
        for batch in reversed(batches):
            self._batches.appendleft(batch)
            self._readings += len(batch)
        if self._batches:
            self._not_empty.set()
