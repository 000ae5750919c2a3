"""A vertical-retort reduction furnace with double-regenerative burner pairs.

Per retort, the cycle charging → evacuating → reducing (≤ 13.3 Pa) → vacuum break → crown
discharge → bottom slag discharge, staggered across the retorts so output is smooth. Per
burner pair, a reversal valve switching A/B every `reversal_period_s`. The furnace burns
fuel gas at the rate its heat demand and the gas's LHV require; fouled regenerators raise
the demand and the flue temperature, a stuck valve lets the exhaust run hot.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.contracts import EventKind
from simulators.model.feed import SimEvent
from simulators.scenario import Fault, FaultKind, SimParameters

ATMOSPHERE_PA = 89_000.0   # Yulin is ≈ 1,100 m above sea level
BASE_VACUUM_PA = 8.0
# Phase lengths in hours; reducing takes the rest of the configured cycle.
PHASES = (("charging", 0.5), ("evacuating", 0.5), ("reducing", None), ("vacuum_break", 0.25),
          ("crown_discharge", 0.5), ("slag_discharge", 0.75))
STATE_CODES = {"idle": 0, "charging": 1, "evacuating": 2, "reducing": 3, "vacuum_break": 4,
               "crown_discharge": 5, "slag_discharge": 6}

Emit = Callable[[str, str, float, float | None], None]
Record = Callable[[SimEvent], None]


@dataclass
class RetortSim:
    path: str
    index: int
    cycle_h: float
    output_t: float
    rng: random.Random     # physics: crown and slag masses
    noise: random.Random   # gauges only
    phase: int = 0
    phase_started_h: float = 0.0
    charged_at_h: float = 0.0
    leak_seen: bool = False
    burnt: bool = False
    out_of_service_until_h: float = -1.0
    cycles: int = 0

    def durations(self) -> list[float]:
        fixed = sum(d for _, d in PHASES if d is not None)
        return [d if d is not None else self.cycle_h - fixed for _, d in PHASES]

    @property
    def state(self) -> str:
        if self.out_of_service_until_h >= 0:
            return "idle"
        return PHASES[self.phase][0]

    def start_at_position(self, position_h: float) -> None:
        """Place the retort `position_h` hours into its cycle at the scenario start."""
        elapsed = 0.0
        for i, duration in enumerate(self.durations()):
            if position_h < elapsed + duration:
                self.phase = i
                self.phase_started_h = -(position_h - elapsed)
                self.charged_at_h = -position_h
                return
            elapsed += duration

    def vacuum_pa(self, now_h: float, leak_pa: float) -> float:
        state = self.state
        in_phase = now_h - self.phase_started_h
        if state == "evacuating":
            return ATMOSPHERE_PA * math.exp(-in_phase / 0.05) + BASE_VACUUM_PA
        if state == "reducing":
            if self.burnt:
                return 25_000.0 + 20_000.0 * min(1.0, in_phase * 4)
            return max(1.0, BASE_VACUUM_PA + self.noise.gauss(0.0, 1.2) + leak_pa)
        if state == "vacuum_break":
            return min(ATMOSPHERE_PA, 50.0 + ATMOSPHERE_PA * in_phase / 0.25)
        return ATMOSPHERE_PA + self.noise.gauss(0.0, 150.0)


@dataclass
class BurnerPairSim:
    path: str
    period_s: float
    phase_s: float
    state: int = 0
    count: float = 0.0


@dataclass
class FurnaceSim:
    path: str             # yulin-1/reduction/furnace-01
    consumer: str         # ledger key: reduction/furnace-01
    retorts: list[RetortSim]
    burners: list[BurnerPairSim]
    zones: int
    heat_mj_per_h: float  # at design, clean regenerators
    params: SimParameters
    rng: random.Random     # physics: what the ledger sees
    noise: random.Random   # measurement noise of gauges only
    faults: list[Fault] = field(default_factory=list)
    gas_flow_nm3_h: float = 0.0
    fouling: float = 0.0
    started: bool = False

    def step(self, t0_h: float, t1_h: float, lhv: float, emit: Emit, record: Record,
             gauges: bool) -> float:
        """Advance from t0 to t1 (hours); emit values; return the gas burnt (Nm³)."""
        self.fouling = self._fouling(t1_h)
        if not self.started:  # a PLC's state nodes have a value from the first moment
            self.started = True
            for pair in self.burners:
                emit(pair.path, "reversal_valve_state", t0_h * 3600, float(pair.state))
                emit(pair.path, "reversal_count_total", t0_h * 3600, pair.count)
            for r in self.retorts:
                emit(r.path, "cycle_state", t0_h * 3600, float(STATE_CODES[r.state]))
        stuck = {f.target for f in self.faults if f.kind is FaultKind.REVERSAL_VALVE_STUCK
                 and f.active(t1_h * 3600)}
        for pair in self.burners:
            self._reverse(pair, t0_h, t1_h, pair.path in stuck, emit)
        for retort in self.retorts:
            self._advance_retort(retort, t0_h, t1_h, emit, record, gauges)
        # Heat demand: design × fouling × a slight penalty for lean gas (more flue volume).
        lean = max(0.0, (self.params.lhv_mj_per_nm3 - lhv) / self.params.lhv_mj_per_nm3)
        heat = self.heat_mj_per_h * (1.0 + self.fouling) * (1.0 + 0.05 * lean)
        heat *= 1.0 + self.rng.gauss(0.0, 0.01)
        self.gas_flow_nm3_h = heat / lhv
        if gauges:
            self._emit_gauges(t1_h, bool(stuck), emit)
        return self.gas_flow_nm3_h * (t1_h - t0_h)

    def _fouling(self, now_h: float) -> float:
        extra = 0.0
        for f in self.faults:
            if f.kind is FaultKind.REGENERATOR_FOULING and now_h * 3600 >= f.at.total_seconds():
                span = f.duration.total_seconds() if f.duration else 30 * 86400.0
                progress = min(1.0, (now_h * 3600 - f.at.total_seconds()) / span)
                extra += f.param("max_extra_heat", 0.30) * progress
        return extra

    def _reverse(self, pair: BurnerPairSim, t0_h: float, t1_h: float, stuck: bool,
                 emit: Emit) -> None:
        t0, t1 = t0_h * 3600, t1_h * 3600
        k = math.floor((t0 + pair.phase_s) / pair.period_s) + 1
        while (switch := k * pair.period_s - pair.phase_s) <= t1:
            if not stuck:
                pair.state ^= 1
                pair.count += 1
                emit(pair.path, "reversal_valve_state", switch, float(pair.state))
                emit(pair.path, "reversal_count_total", switch, pair.count)
            k += 1

    def _advance_retort(self, r: RetortSim, t0_h: float, t1_h: float, emit: Emit,
                        record: Record, gauges: bool) -> None:
        if r.out_of_service_until_h >= 0:
            if t1_h < r.out_of_service_until_h:
                return
            r.out_of_service_until_h = -1.0  # repaired: a new retort starts charging
            r.burnt, r.phase, r.phase_started_h = False, 0, t1_h
            self._on_enter(r, t1_h, emit, record)
        if r.state == "reducing" and not r.burnt and self._burns_through(r, t1_h):
            r.burnt = True
        durations = r.durations()
        while True:
            duration = durations[r.phase]
            if r.burnt and r.state == "reducing":
                duration = min(duration, (t1_h - r.phase_started_h) + 0.25)
            end = r.phase_started_h + duration
            if end > t1_h:
                break
            self._on_leave(r, end, record)
            if r.out_of_service_until_h >= 0:
                emit(r.path, "cycle_state", end * 3600, float(STATE_CODES["idle"]))
                return
            r.phase = (r.phase + 1) % len(PHASES)
            r.phase_started_h = end
            self._on_enter(r, end, emit, record)
        leak = self._leak_pa(r, t1_h)
        if leak and r.state == "reducing":
            r.leak_seen = True
        if gauges:
            t = t1_h * 3600
            emit(r.path, "vacuum_pa", t, r.vacuum_pa(t1_h, leak))
            cooling = 38.0 if r.state == "reducing" else 28.0
            emit(r.path, "condenser_water_temp_c", t, cooling + r.noise.gauss(0.0, 0.6))
            emit(r.path, "cycle_elapsed_h", t, max(0.0, t1_h - r.charged_at_h))

    def _on_enter(self, r: RetortSim, at_h: float, emit: Emit, record: Record) -> None:
        emit(r.path, "cycle_state", at_h * 3600, float(STATE_CODES[r.state]))
        if r.state == "charging":
            r.charged_at_h, r.leak_seen, r.cycles = at_h, False, r.cycles + 1
            p = self.params
            record(SimEvent(EventKind.FESI_CONSUMED, r.path, at_h * 3600,
                            round(r.output_t * p.fesi_t_per_t_mg, 4),
                            f"{r.path}/c{r.cycles}/fesi"))
            record(SimEvent(EventKind.FLUORITE_CONSUMED, r.path, at_h * 3600,
                            round(r.output_t * p.fluorite_t_per_t_mg, 4),
                            f"{r.path}/c{r.cycles}/fluorite"))

    def _on_leave(self, r: RetortSim, at_h: float, record: Record) -> None:
        state = r.state
        if state == "crown_discharge":
            crown = r.output_t * max(0.5, r.rng.gauss(1.0, 0.03))
            if r.leak_seen:
                crown *= 1.0 - self._leak_loss(r)
            if r.burnt:
                crown *= 0.3  # salvaged; the rest oxidised when air got in
            record(SimEvent(EventKind.CROWN_DISCHARGED, r.path, at_h * 3600, round(crown, 4),
                            f"{r.path}/c{r.cycles}/crown"))
        elif state == "slag_discharge":
            slag = r.output_t * self.params.slag_t_per_t_mg * max(0.5, r.rng.gauss(1.0, 0.02))
            record(SimEvent(EventKind.SLAG_DISCHARGED, r.path, at_h * 3600, round(slag, 4),
                            f"{r.path}/c{r.cycles}/slag"))
            if r.burnt:
                r.out_of_service_until_h = at_h + self._repair_h(r)

    def _leak_pa(self, r: RetortSim, now_h: float) -> float:
        for f in self.faults:
            if f.kind is FaultKind.VACUUM_LEAK and f.target == r.path and f.active(now_h * 3600):
                ramp = min(1.0, (now_h * 3600 - f.at.total_seconds()) / 3600.0)
                return f.param("leak_pa", 80.0) * ramp
        return 0.0

    def _leak_loss(self, r: RetortSim) -> float:
        for f in self.faults:
            if f.kind is FaultKind.VACUUM_LEAK and f.target == r.path:
                return f.param("yield_loss", 0.2)
        return 0.0

    def _burns_through(self, r: RetortSim, now_h: float) -> bool:
        return any(f.kind is FaultKind.RETORT_BURN_THROUGH and f.target == r.path
                   and f.active(now_h * 3600) for f in self.faults)

    def _repair_h(self, r: RetortSim) -> float:
        for f in self.faults:
            if f.kind is FaultKind.RETORT_BURN_THROUGH and f.target == r.path:
                return f.param("repair_h", 48.0)
        return 48.0

    def _emit_gauges(self, now_h: float, stuck: bool, emit: Emit) -> None:
        t = now_h * 3600
        rng, fouling = self.noise, self.fouling
        emit(self.path, "fuel_gas_flow_nm3_h", t, self.gas_flow_nm3_h)
        emit(self.path, "fuel_gas_pressure_kpa", t, 8.0 + rng.gauss(0.0, 0.15))
        exhaust = 130.0 + 500.0 * fouling + rng.gauss(0.0, 4.0)
        if stuck:
            exhaust = max(exhaust, 420.0 + rng.gauss(0.0, 10.0))
        emit(self.path, "flue_exhaust_temp_c", t, exhaust)
        emit(self.path, "flue_o2_pct", t, max(0.5, 3.0 + rng.gauss(0.0, 0.3)))
        setpoint = self.params.zone_setpoint_c
        for z in range(1, self.zones + 1):
            offset = 8.0 * math.sin(z * 1.7)
            emit(f"{self.path}/zone-{z}", "zone_temp_c", t,
                 setpoint + offset - (40.0 if stuck else 0.0) + rng.gauss(0.0, 2.5))
        for pair in self.burners:
            drop = 600.0 * fouling + (350.0 if stuck else 0.0)
            emit(pair.path, "air_preheat_temp_c", t, 1000.0 - drop + rng.gauss(0.0, 5.0))
            emit(pair.path, "gas_preheat_temp_c", t, 950.0 - drop + rng.gauss(0.0, 5.0))
