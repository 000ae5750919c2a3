"""DeadLetter: what could not be stored, with the raw payload and the reason. Never a silent
drop: a source that cannot decode a message, and the writer that cannot store a value, both
make one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DeadLetter:
    origin: str                 # where it came from, e.g. "mqtt:smelter/v1/yulin-1/_batch/x"
    reason: str                 # for a person: what is wrong and, where it helps, what to do
    payload: bytes = b""        # the raw bytes as received (a message, a part of one)
    detail: dict[str, Any] = field(default_factory=dict)  # JSON-able context (topic, index…)
