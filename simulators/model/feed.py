"""What the model emits: values (for OPC UA nodes and MQTT topics) and material events."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.contracts import STATUS_GOOD, EventKind


@dataclass(frozen=True, slots=True)
class SimValue:
    asset: str          # full asset path, e.g. yulin-1/reduction/furnace-03/retort-07
    signal: str
    offset_s: float     # simulated seconds since the scenario start (source time)
    value: float | None
    status: int = STATUS_GOOD


@dataclass(frozen=True, slots=True)
class SimEvent:
    kind: EventKind
    asset: str
    offset_s: float              # when it happened
    quantity: float
    key: str                     # idempotency key, stable for a given seed
    destination: str | None = None
    ticket: str | None = None
    publish_offset_s: float = -1.0  # when the weighbridge sends it (late events: later)

    @property
    def unit(self) -> str:
        from collector.contracts import EVENT_UNITS

        return EVENT_UNITS[self.kind]


@dataclass(slots=True)
class Frame:
    """Everything that happened in (previous tick, this tick]: values in time order."""

    offset_s: float
    values: list[SimValue] = field(default_factory=list)
    events: list[SimEvent] = field(default_factory=list)
