"""Where each node's data is complete: the start of the next backfill.

- `last_seen`: the newest source time handed on, per (asset, signal).
- `resume_from`: the newest source time up to which nothing is missing. It follows `last_seen`
  only while the source is caught up — after a session's backfill succeeded — so a session lost
  in the middle of a backfill starts the next one from the same place. `None` until it was
  loaded from the store (after a restart) or the first backfill succeeded.
- `holes`: the earliest source time of values the pipeline had to drop (queue and spool full),
  per key: a backfill from there fills them; until it does, `resume_from` stays before them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from collector.contracts import Reading

Key = tuple[str, str]


class GapTracker:
    def __init__(self) -> None:
        self.last_seen: dict[Key, datetime] = {}
        self.resume_from: dict[Key, datetime] | None = None
        self.holes: dict[Key, datetime] = {}
        self.caught_up = False

    def seen(self, readings: Iterable[Reading]) -> None:
        last_seen, resume = self.last_seen, self.resume_from if self.caught_up else None
        for r in readings:
            key = (r.asset, r.signal)
            if key not in last_seen or r.time > last_seen[key]:
                last_seen[key] = r.time
                if resume is not None and key not in self.holes:
                    resume[key] = r.time

    def session_started(self) -> None:
        self.caught_up = False

    def load(self, stored: dict[Key, datetime]) -> None:
        """Resume points from the store (the first session after a restart)."""
        self.resume_from = dict(stored)

    def starts(self) -> dict[Key, datetime]:
        """Per key, where the backfill of a new session starts (keys without one are unknown)."""
        starts = dict(self.resume_from or {})
        for key, hole in self.holes.items():
            starts[key] = min(hole, starts.get(key, hole))
        return starts

    def backfilled(self) -> None:
        """The session's backfill succeeded: complete up to what was seen, holes aside."""
        resume = self.resume_from if self.resume_from is not None else {}
        for key, when in self.last_seen.items():
            if key not in self.holes:
                resume[key] = when
        self.resume_from, self.caught_up = resume, True

    def dropped(self, readings: Iterable[Reading]) -> None:
        for r in readings:
            key = (r.asset, r.signal)
            if key not in self.holes or r.time < self.holes[key]:
                self.holes[key] = r.time

    def filled(self, holes: dict[Key, datetime]) -> None:
        """A catch-up backfill read these holes; those not dropped into again are closed."""
        for key, when in holes.items():
            if self.holes.get(key) == when:
                del self.holes[key]
                if self.resume_from is not None and key in self.last_seen:
                    self.resume_from[key] = self.last_seen[key]
