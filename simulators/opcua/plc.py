"""The simulated plant's PLCs: one OPC UA device per OPC UA source of the plant model.

Each exposes Objects/<site>/<area>/<equipment>[/<sub-asset>]/<signal> variables whose NodeIds
are the plant model's binding addresses in the source's namespace URI, with EngineeringUnits,
EURange (the catalogue's physical range) and a description, and writes each frame of the
plant model with the simulated source time and the wall-clock server time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asyncua import ua

from collector.contracts import CATALOGUE, Binding, Plant
from collector.contracts.plant import OpcUaSource
from simulators.clock import VirtualClock
from simulators.model.feed import Frame
from simulators.opcua.device import EngineeringUnit, OpcUaChaos, OpcUaDevice, VariableSpec
from simulators.opcua.security import OpcUaSecurity
from simulators.opcua.units import UNECE_CODES, UNECE_URI, unece_unit_id

# the statuses a node cycles through under `QualityCycle` (Good, Uncertain, Bad)
CYCLE_STATUSES = (0, ua.StatusCodes.UncertainSensorNotAccurate, ua.StatusCodes.BadSensorFailure)


@dataclass(frozen=True)
class QualityCycle:
    """OPC PLC's "cycle node quality": `pct` % of the nodes (chosen by `seed`) go Good →
    Uncertain → Bad → Good …, each for `period_s` simulated seconds."""

    pct: float = 0.0
    period_s: float = 600.0
    seed: int = 0

    def cycles(self, address: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}/{address}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 * 100 < self.pct

    def status_at(self, offset_s: float) -> int:
        return int(CYCLE_STATUSES[int(offset_s // self.period_s) % 3])


def variable_specs(plant: Plant, source: OpcUaSource) -> list[VariableSpec]:
    specs = []
    for b in plant.bindings():
        if b.source != source.id:
            continue
        signal = CATALOGUE[b.signal]
        unit = signal.unit
        specs.append(VariableSpec(
            namespace=source.namespace, identifier=f"s={b.address}",
            browse_path=(*b.asset.split("/"), b.signal), description=f"{signal.en} ({unit})",
            unit=EngineeringUnit(UNECE_URI, unece_unit_id(UNECE_CODES.get(unit, "")), unit, unit),
            eu_range=signal.physical_range))
    return specs


class PlcServer:
    """One simulated PLC. `await start()`, then `await apply(frame)` per frame."""

    def __init__(self, plant: Plant, source: OpcUaSource, clock: VirtualClock,
                 security: OpcUaSecurity | None = None, endpoint: str | None = None,
                 chaos: OpcUaChaos | None = None,
                 quality_cycle: QualityCycle | None = None) -> None:
        self.plant, self.source, self.clock = plant, source, clock
        self.endpoint = endpoint or source.endpoint
        self.device = OpcUaDevice(self.endpoint, f"smeltwatch simulated PLC {source.id}",
                                  f"urn:smeltwatch:sim:{source.id}",
                                  variable_specs(plant, source), security, chaos,
                                  # the PLC booted a moment before the scenario began; a
                                  # boot state at the first value's instant would collide
                                  initial_time=clock.start - timedelta(seconds=1))
        self.quality_cycle = quality_cycle or QualityCycle()
        self._targets: dict[tuple[str, str], tuple[ua.NodeId, Binding, bool]] = {}

    async def start(self) -> None:
        await self.device.start()
        for b in self.plant.bindings():
            if b.source == self.source.id:
                node_id = self.device.node_ids[(self.source.namespace, f"s={b.address}")]
                self._targets[(b.asset, b.signal)] = (node_id, b,
                                                      self.quality_cycle.cycles(b.address))

    async def stop(self) -> None:
        await self.device.stop()

    async def apply(self, frame: Frame) -> int:
        """Write the frame's values for this PLC's nodes; returns how many were written."""
        written = 0
        now = datetime.now(UTC)
        for v in frame.values:
            target = self._targets.get((v.asset, v.signal))
            if target is None:
                continue
            node_id, binding, cycling = target
            status, value = v.status, v.value
            if cycling and status == 0:
                status = self.quality_cycle.status_at(v.offset_s)
            if status & 0x8000_0000 or value is None:  # Bad: no value (Part 4, 7.7.1)
                variant = ua.Variant()
            else:
                variant = ua.Variant((value - binding.offset) / binding.factor,
                                     ua.VariantType.Double)
            await self.device.write(node_id, ua.DataValue(
                variant, StatusCode=ua.StatusCode(status),
                SourceTimestamp=self.clock.at(v.offset_s), ServerTimestamp=now))
            written += 1
        return written
