"""The virtual clock: simulated time runs `speed` times faster than the wall clock from a
chosen start. The plant model is stepped on its own grid, so what is simulated never depends on
the speed; the clock only paces when each frame goes out (speed 0: as fast as possible)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta


class VirtualClock:
    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock's start must carry a time zone")
        self.start, self.speed = start, speed
        self._wall0 = time.monotonic()

    def restart(self) -> None:
        """Simulated time starts now (call when the first frame is about to go out)."""
        self._wall0 = time.monotonic()

    def at(self, offset_s: float) -> datetime:
        """Simulated time `offset_s` seconds after the start."""
        return self.start + timedelta(seconds=offset_s)

    def now_offset_s(self) -> float:
        if self.speed <= 0:
            return float("inf")
        return (time.monotonic() - self._wall0) * self.speed

    async def wait_for(self, offset_s: float) -> None:
        """Sleep until simulated time reaches `offset_s` (no wait at speed 0)."""
        if self.speed <= 0:
            return
        delay = self._wall0 + offset_s / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
