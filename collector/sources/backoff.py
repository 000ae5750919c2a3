"""Capped, jittered exponential back-off for reconnecting (≤ 30 s by default: a source that
waits minutes after a PLC restart loses minutes of data — Telegraf #9154, TB gateway #1828)."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, first_s: float = 1.0, cap_s: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.first_s, self.cap_s = first_s, cap_s
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        """Full jitter over an exponentially growing ceiling (AWS architecture blog)."""
        ceiling = min(self.cap_s, self.first_s * 2 ** self._attempt)
        self._attempt += 1
        return self._rng.uniform(self.first_s / 2, max(self.first_s / 2, ceiling))

    def reset(self) -> None:
        self._attempt = 0
