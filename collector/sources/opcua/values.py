"""OPC UA DataValues into Readings: every value keeps its full StatusCode, source and server
time; what cannot be a number becomes a dead letter, never a crash and never a silent drop."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asyncua import ua

from collector.contracts import Binding, DeadLetter, Quality, Reading


def to_reading(binding: Binding, value: ua.DataValue, origin: str,
               received_at: datetime) -> Reading | DeadLetter:
    status = value.StatusCode.value if value.StatusCode is not None else 0
    # Source time is what the device measured; a server that sends none gets its own time,
    # and a value with neither the time it reached us (OPC UA Part 4, 7.7.3 allows both).
    when = value.SourceTimestamp or value.ServerTimestamp or received_at
    raw: Any = value.Value.Value if value.Value is not None else None
    if isinstance(raw, bool):
        number: float | None = 1.0 if raw else 0.0
    elif isinstance(raw, int | float):
        number = float(raw)
    elif raw is None:
        number = None
    else:
        return DeadLetter(origin, f"value of type {type(raw).__name__} is not a number "
                                  f"(OPC UA {value.Value.VariantType.name})",
                          repr(raw).encode()[:4096],
                          {"asset": binding.asset, "signal": binding.signal,
                           "status_code": status, "time": when.isoformat()})
    if number is not None:
        number = binding.convert(number)
    return Reading(binding.asset, binding.signal, number, when,
                   Quality.from_status_code(status), status, origin, value.ServerTimestamp)
