"""The plant in software: a deterministic, physically plausible model of a vertical-retort
Pidgeon smelter, stepped on simulated time. Imports only the shared contract modules."""

from simulators.model.feed import Frame, SimEvent, SimValue
from simulators.model.ledger import Ledger
from simulators.model.plant_sim import PlantSim

__all__ = ["Frame", "Ledger", "PlantSim", "SimEvent", "SimValue"]
