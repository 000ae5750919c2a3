"""PlantSim: the whole plant, stepped on the scenario's sampling grid.

Deterministic for a given (plant, scenario, seed): every component draws from its own named
random stream, so a process that serves only one PLC computes exactly the same plant as the
one that serves the meters. Faults that change the physics live in the components; faults that
change only what the outside sees (dropouts, Bad status, clock skew, late events) are applied
here, on the way out, and never touch the ledger.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import replace
from zoneinfo import ZoneInfo

from collector.contracts import STATUS_BAD, Carrier, Plant
from collector.contracts.plant import EnergyMeter, ReductionFurnace
from simulators.model.feed import Frame, SimEvent, SimValue
from simulators.model.furnace import BurnerPairSim, FurnaceSim, RetortSim
from simulators.model.ledger import MJ_PER_TCE, Ledger
from simulators.model.site import CounterSim, KilnSim, LhvSim, RefiningSim, SlagYardSim
from simulators.scenario import Fault, FaultKind, Scenario

BAD_SENSOR_FAILURE = 0x808C_0000  # OPC UA Part 4, Annex A: BadSensorFailure


class PlantSim:
    def __init__(self, plant: Plant, scenario: Scenario, *, gauges: bool = True) -> None:
        self.plant, self.scenario, self.gauges = plant, scenario, gauges
        self.site = plant.site.id
        self.params = scenario.parameters
        self.faults = [self._absolute(f) for f in scenario.faults]
        self.ledger = Ledger()
        self.step_s = scenario.sampling.total_seconds()
        self.end_s = scenario.duration.total_seconds()
        self.offset_s = 0.0
        self._values: list[SimValue] = []
        self._events: list[SimEvent] = []
        self._late: list[SimEvent] = []
        self._late_kinds = {f.params.get("kind", "ingot_cast"): f for f in self.faults
                            if f.kind is FaultKind.LATE_EVENT}
        self._source_of = {(b.asset, b.signal): b.source for b in plant.bindings()}
        self._meter_rngs: dict[str, random.Random] = {}
        self._build()

    # --- construction -----------------------------------------------------------------------
    def _rng(self, name: str) -> random.Random:
        return random.Random(f"{self.scenario.seed}/{name}")

    def _absolute(self, fault: Fault) -> Fault:
        target = fault.target
        if target and "/" in target and not target.startswith(f"{self.site}/"):
            return fault.model_copy(update={"target": f"{self.site}/{target}"})
        return fault

    def _build(self) -> None:
        p, plant = self.params, self.plant
        recovery = p.refining_recovery
        crude_t_h = plant.capacity_t_per_year() / 8760.0
        ingot_t_h = crude_t_h * recovery
        self.furnaces: list[FurnaceSim] = []
        self.kilns: list[KilnSim] = []
        self.refiners: list[RefiningSim] = []
        self.meters: list[tuple[EnergyMeter, CounterSim, CounterSim | None]] = []
        self.yard: SlagYardSim | None = None
        self.lhv: LhvSim | None = None
        self.weather: str | None = None
        for area, item in plant.equipment():
            path = plant.asset_path(area, item)
            consumer = f"{area.id}/{item.id}"
            if isinstance(item, ReductionFurnace):
                self.furnaces.append(self._furnace(item, path, consumer, recovery))
            elif item.kind == "rotary_kiln":
                self.kilns.append(KilnSim(
                    path, consumer, p.calcination_tce_per_t * MJ_PER_TCE * ingot_t_h,
                    self._rng(path), self._rng(f"{path}#n"),
                    dolomite_t_h=p.dolomite_t_per_t_mg * crude_t_h))
            elif item.kind == "refining_furnace":
                self.refiners.append(RefiningSim(
                    path, consumer, p.refining_tce_per_t * MJ_PER_TCE * ingot_t_h,
                    self._rng(path), self._rng(f"{path}#n"), params=p))
            elif isinstance(item, EnergyMeter):
                self.meters.append(self._meter(item, path))
            elif item.kind == "gas_analyser":
                self.lhv = LhvSim(path, p.lhv_mj_per_nm3, p.lhv_variation, self._rng(path),
                                  self._rng(f"{path}#n"))
            elif item.kind == "weather_station":
                self.weather = path
            elif item.kind == "slag_yard":
                zone = ZoneInfo(plant.site.timezone)
                offset = self.scenario.start.astimezone(zone).utcoffset()
                self.yard = SlagYardSim(path, p, offset.total_seconds() / 3600 if offset else 0)
        self._gas_flows: dict[str, float] = {}

    def _furnace(self, item: ReductionFurnace, path: str, consumer: str,
                 recovery: float) -> FurnaceSim:
        n = item.retorts
        retorts = []
        for i in range(1, n + 1):
            name = f"{path}/retort-{i:02d}"
            r = RetortSim(name, i, item.cycle_h, item.retort_output_t_per_cycle,
                          self._rng(name), self._rng(f"{name}#n"))
            r.start_at_position((i - 1) * item.cycle_h / n)
            retorts.append(r)
        burners = [BurnerPairSim(f"{path}/burner-pair-{b}", item.reversal_period_s,
                                 (b - 1) * item.reversal_period_s / item.burner_pairs,
                                 count=float(400_000 + 1_000 * b))
                   for b in range(1, item.burner_pairs + 1)]
        ingot_t_h = item.capacity_t_per_year() / 8760.0 * recovery
        heat = self.params.reduction_tce_per_t * MJ_PER_TCE * ingot_t_h
        faults = [f for f in self.faults if (f.target or "").startswith(path)
                  or (f.kind is FaultKind.REGENERATOR_FOULING and not f.target)]
        return FurnaceSim(path, consumer, retorts, burners, item.zones, heat, self.params,
                          self._rng(path), self._rng(f"{path}#n"), faults)

    def _meter(self, item: EnergyMeter, path: str) -> tuple[EnergyMeter, CounterSim,
                                                            CounterSim | None]:
        rng = self._rng(path)
        start = self.scenario.meter_start.get(path.removeprefix(f"{self.site}/"))
        if item.carrier is Carrier.ELECTRICITY:
            total = CounterSim(path, "electricity_kwh_total",
                               start if start is not None else rng.uniform(1e6, 5e6),
                               item.rollover_at)
            return item, total, CounterSim(path, "power_kw", 0.0, None)
        signal = "gas_volume_nm3_total" if item.carrier is Carrier.FUEL_GAS else "water_m3_total"
        initial = start if start is not None else rng.uniform(1e6, 5e7)
        return item, CounterSim(path, signal, initial, item.rollover_at), None

    # --- stepping ---------------------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        while self.offset_s < self.end_s - 1e-9:
            yield self.step()

    def step(self) -> Frame:
        t0_s = self.offset_s
        t1_s = min(self.end_s, t0_s + self.step_s)
        t0_h, t1_h = t0_s / 3600.0, t1_s / 3600.0
        day = int(t1_s // 86400) if t1_s % 86400 else int(t1_s // 86400) - 1
        self._values, self._events = [], []
        emit = self._emit if self.gauges else _discard
        record = self._record

        lhv = self._step_lhv(t0_h, t1_h)
        for furnace in self.furnaces:
            nm3 = furnace.step(t0_h, t1_h, lhv, emit, record, self.gauges)
            self._burn(furnace.consumer, nm3, lhv, day)
        for kiln in self.kilns:
            self._burn(kiln.consumer, kiln.step(t0_h, t1_h, lhv, emit, record, self.gauges),
                       lhv, day)
        for refiner in self.refiners:
            self._burn(refiner.consumer,
                       refiner.step(t0_h, t1_h, lhv, emit, record, self.gauges), lhv, day)
        self._step_meters(t0_s, t1_s, day)
        if self.yard is not None:
            stopped = any(f.kind is FaultKind.SLAG_SHIPMENTS_STOP and f.active(t1_s)
                          for f in self.faults)
            for destination, tonnes in self.yard.step(t1_h, stopped, emit, record):
                self.ledger.slag_shipped_t[destination] += tonnes
        if self.weather:
            local_h = (t1_h + 8.0) % 24.0  # Asia/Shanghai
            emit(self.weather, "ambient_temp_c", t1_s,
                 -2.0 + 7.0 * math.sin((local_h - 9.0) / 24.0 * 2 * math.pi))
        self.offset_s = t1_s
        return self._frame(t1_s)

    def _step_lhv(self, t0_h: float, t1_h: float) -> float:
        target = self.params.lhv_mj_per_nm3
        for f in self.faults:
            if f.kind is FaultKind.LOW_LHV and f.active(t1_h * 3600):
                target = f.param("lhv_mj_per_nm3", 6.0)
        if self.lhv is None:
            return target
        return self.lhv.step(t0_h, t1_h, target, self._emit if self.gauges else _discard,
                             self._record, self.gauges)

    def _burn(self, consumer: str, nm3: float, lhv: float, day: int) -> None:
        self.ledger.add_gas(consumer, nm3, lhv, day)
        self._gas_flows[consumer] = self._gas_flows.get(consumer, 0.0) + nm3

    def _step_meters(self, t0_s: float, t1_s: float, day: int) -> None:
        hours = (t1_s - t0_s) / 3600.0
        for item, total, power in self.meters:
            for f in self.faults:
                if (f.kind is FaultKind.METER_RESET and f.target == total.path
                        and t0_s < f.at.total_seconds() <= t1_s):
                    total.value = 0.0
            if item.carrier is Carrier.ELECTRICITY:
                kw = self.params.electric_kw.get(item.scope, 0.0) * (
                    1.0 + self._rng_for(total.path).gauss(0.0, 0.02))
                total.add(kw * hours)
                self.ledger.add_electricity(item.scope, kw * hours, day)
                if power is not None and self.gauges:
                    self._emit(total.path, "power_kw", t1_s, kw)
            elif item.carrier is Carrier.FUEL_GAS:
                total.add(self._gas_flows.pop(item.scope, 0.0))
            else:
                total.add(self.params.water_m3_per_h * hours)
            if self.gauges:
                self._emit(total.path, total.signal, t1_s, total.value)

    def _rng_for(self, path: str) -> random.Random:
        if path not in self._meter_rngs:
            self._meter_rngs[path] = self._rng(f"{path}#load")
        return self._meter_rngs[path]

    # --- output -----------------------------------------------------------------------------
    def _emit(self, asset: str, signal: str, offset_s: float, value: float | None) -> None:
        self._values.append(SimValue(asset, signal, offset_s, value))

    def _record(self, event: SimEvent) -> None:
        day = int(event.offset_s // 86400)
        self.ledger.add_mass(event.kind.value, event.quantity, day)
        if event.kind.value == "crown_discharged":
            for refiner in self.refiners:
                refiner.crowns_t += event.quantity
        elif event.kind.value == "slag_discharged" and self.yard is not None:
            self.yard.stock_t += event.quantity
        late = self._late_kinds.get(event.kind.value)
        if late is not None and event.offset_s >= late.at.total_seconds():
            delay = late.duration.total_seconds() if late.duration else 2 * 86400.0
            del self._late_kinds[event.kind.value]
            self._late.append(replace(event, publish_offset_s=event.offset_s + delay))
            return
        self._events.append(replace(event, publish_offset_s=event.offset_s))

    def _frame(self, t1_s: float) -> Frame:
        values = [v for v in (self._outward(v) for v in self._values) if v is not None]
        values.sort(key=lambda v: v.offset_s)
        due = [e for e in self._late if e.publish_offset_s <= t1_s]
        if due:
            self._late = [e for e in self._late if e.publish_offset_s > t1_s]
        return Frame(t1_s, values, self._events + due)

    def _outward(self, value: SimValue) -> SimValue | None:
        source = self._source_of.get((value.asset, value.signal))
        for f in self.faults:
            if not f.active(value.offset_s):
                continue
            if f.kind is FaultKind.DATA_DROPOUT and f.target in (source, value.asset):
                return None
            if f.kind is FaultKind.BAD_QUALITY and f.target is not None and (
                    value.asset == f.target or value.asset.startswith(f"{f.target}/")):
                value = replace(value, value=None, status=BAD_SENSOR_FAILURE)
            if f.kind is FaultKind.CLOCK_SKEW and f.target == source:
                value = replace(value, offset_s=value.offset_s + f.param("seconds", 420.0))
        return value


def _discard(asset: str, signal: str, offset_s: float, value: float | None) -> None:
    """The emit of a ledger-only run: no values are produced."""


__all__ = ["BAD_SENSOR_FAILURE", "STATUS_BAD", "PlantSim"]
