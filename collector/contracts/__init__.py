"""smeltwatch's data contracts: Reading, the signal catalogue, material events, the plant model.

Every package may import these; they depend on the standard library, pydantic and PyYAML only.
"""

from collector.contracts.dead_letter import DeadLetter
from collector.contracts.events import EVENT_UNITS, EventKind, MaterialEvent, SlagDestination
from collector.contracts.plant import Binding, Carrier, Plant, Stage
from collector.contracts.plant_file import PlantConfigError, load_plant, parse_plant
from collector.contracts.reading import (
    STATUS_BAD,
    STATUS_GOOD,
    STATUS_UNCERTAIN,
    Quality,
    Reading,
)
from collector.contracts.signals import CATALOGUE, Signal, SignalKind, UnknownSignalError, signal

__all__ = [
    "CATALOGUE",
    "EVENT_UNITS",
    "STATUS_BAD",
    "STATUS_GOOD",
    "STATUS_UNCERTAIN",
    "Binding",
    "Carrier",
    "DeadLetter",
    "EventKind",
    "MaterialEvent",
    "Plant",
    "PlantConfigError",
    "Quality",
    "Reading",
    "Signal",
    "SignalKind",
    "SlagDestination",
    "Stage",
    "UnknownSignalError",
    "load_plant",
    "parse_plant",
    "signal",
]
