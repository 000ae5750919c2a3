"""The rest of the plant around the furnaces: kiln, refining, meters, LHV analyser, weather,
slag yard. Each is small and deterministic given its random stream."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from collector.contracts import EventKind
from simulators.model.feed import SimEvent
from simulators.model.furnace import Emit, Record
from simulators.scenario import SimParameters


def period_entered(now_h: float, period_h: float, last: int) -> int | None:
    """The index of the period (of `period_h` hours) that `now_h` lies in, if later than
    `last`: how shift bookings, casts, lab days and truck hours know a new one began."""
    index = math.floor(now_h / period_h)
    return index if index > last else None


@dataclass
class GasFiredSim:
    """A unit that burns fuel gas at the rate its heat demand and the gas's LHV require."""

    path: str
    consumer: str          # ledger key: area/equipment
    heat_mj_per_h: float   # at design output
    rng: random.Random     # physics
    noise: random.Random   # gauges only
    gas_flow_nm3_h: float = field(default=0.0, init=False)

    def burn(self, t0_h: float, t1_h: float, lhv: float, spread: float) -> float:
        """Gas burnt from t0 to t1 (Nm³), the demand varying by `spread` (relative σ)."""
        heat = self.heat_mj_per_h * (1.0 + self.rng.gauss(0.0, spread))
        self.gas_flow_nm3_h = heat / lhv
        return self.gas_flow_nm3_h * (t1_h - t0_h)


@dataclass
class KilnSim(GasFiredSim):
    dolomite_t_h: float = 0.0
    fed_since_weighing_t: float = 0.0
    shift: int = 0

    def step(self, t0_h: float, t1_h: float, lhv: float, emit: Emit, record: Record,
             gauges: bool) -> float:
        feed = self.dolomite_t_h * (1.0 + self.rng.gauss(0.0, 0.01))
        self.fed_since_weighing_t += feed * (t1_h - t0_h)
        # The raw-material weighbridge books the dolomite fed per 8-hour shift.
        if (shift := period_entered(t1_h, 8.0, self.shift)) is not None:
            self.shift = shift
            record(SimEvent(EventKind.DOLOMITE_CONSUMED, self.path, self.shift * 8.0 * 3600,
                            round(self.fed_since_weighing_t, 3), f"{self.path}/s{self.shift}"))
            self.fed_since_weighing_t = 0.0
        burnt = self.burn(t0_h, t1_h, lhv, 0.01)
        if gauges:
            t, n = t1_h * 3600, self.noise
            emit(self.path, "kiln_burning_zone_temp_c", t, 1150.0 + n.gauss(0.0, 8.0))
            emit(self.path, "kiln_exhaust_temp_c", t, 160.0 + n.gauss(0.0, 4.0))
            emit(self.path, "cooler_secondary_air_temp_c", t, 650.0 + n.gauss(0.0, 10.0))
            emit(self.path, "dolomite_feed_t_h", t, feed)
            emit(self.path, "calcined_output_t_h", t, feed * 0.53)
            emit(self.path, "calcined_loi_pct", t, max(0.1, 0.5 + n.gauss(0.0, 0.1)))
        return burnt


@dataclass
class RefiningSim(GasFiredSim):
    params: SimParameters = field(default_factory=SimParameters)
    crowns_t: float = 0.0
    casts: int = 0

    def step(self, t0_h: float, t1_h: float, lhv: float, emit: Emit, record: Record,
             gauges: bool) -> float:
        # Crowns are refined and cast in batches every four hours; the ingots are weighed.
        if (cast := period_entered(t1_h, 4.0, self.casts)) is not None:
            self.casts = cast
            if self.crowns_t > 0:
                recovery = self.params.refining_recovery + self.rng.gauss(0.0, 0.003)
                record(SimEvent(EventKind.INGOT_CAST, self.path, self.casts * 4.0 * 3600,
                                round(self.crowns_t * recovery, 4),
                                f"{self.path}/cast{self.casts}"))
                self.crowns_t = 0.0
        burnt = self.burn(t0_h, t1_h, lhv, 0.02)
        if gauges:
            t, n = t1_h * 3600, self.noise
            emit(self.path, "refining_melt_temp_c", t, 690.0 + n.gauss(0.0, 6.0))
            emit(self.path, "refining_flue_temp_c", t, 180.0 + n.gauss(0.0, 6.0))
        return burnt


@dataclass
class CounterSim:
    """A totaliser: integrates a rate, wraps at `rollover_at`, can be reset to zero."""

    path: str
    signal: str
    value: float
    rollover_at: float | None

    def add(self, amount: float) -> None:
        self.value += amount
        if self.rollover_at is not None and self.value >= self.rollover_at:
            self.value -= self.rollover_at


@dataclass
class LhvSim:
    """Semi-coke off-gas LHV: a mean-reverting walk around the nominal (or a low-LHV day)."""

    path: str
    nominal: float
    sigma: float
    rng: random.Random
    noise: random.Random
    value: float = 0.0
    day_sum: float = 0.0
    day_hours: float = 0.0
    day: int = 0

    def step(self, t0_h: float, t1_h: float, target: float, emit: Emit, record: Record,
             gauges: bool) -> float:
        dt = t1_h - t0_h
        if not self.value:
            self.value = target
        theta = 1.0  # gas quality follows the semi-coke ovens within about an hour
        self.value += theta * (target - self.value) * dt + self.sigma * math.sqrt(
            max(dt, 1e-9) * 2 * theta) * self.rng.gauss(0.0, 1.0)
        self.day_sum += self.value * dt
        self.day_hours += dt
        if (day := period_entered(t1_h, 24.0, self.day)) is not None:
            self.day = day  # the lab reports the day's mean LHV
            mean = self.day_sum / self.day_hours
            record(SimEvent(EventKind.GAS_LHV_LAB, self.path, self.day * 86400.0,
                            round(mean + self.rng.gauss(0.0, 0.03), 3), f"{self.path}/d{self.day}"))
            self.day_sum = self.day_hours = 0.0
        if gauges:
            emit(self.path, "gas_lhv_mj_per_nm3", t1_h * 3600,
                 self.value + self.noise.gauss(0.0, 0.05))
        return self.value


@dataclass
class SlagYardSim:
    """Slag comes in from every retort; trucks take it to users on the day shift only, a
    limited number a day, so a stopped week leaves a backlog the yard works off slowly."""

    path: str
    params: SimParameters
    utc_offset_h: float
    stock_t: float = 300.0
    reserve_t: float = 300.0
    trucks: int = 0
    trucks_today: int = 0
    shipped_by: dict[str, float] = field(default_factory=dict)
    hour: int = -1

    def step(self, t1_h: float, stopped: bool, emit: Emit, record: Record) -> list[
            tuple[str, float]]:
        shipments: list[tuple[str, float]] = []
        if (hour := period_entered(t1_h, 1.0, self.hour)) is not None:
            self.hour = hour
            local_hour = (self.hour + self.utc_offset_h) % 24
            if local_hour == 0:
                self.trucks_today = 0
            truck, cap = self.params.slag_truck_t, self.params.slag_trucks_per_day
            day_shift = 8 <= local_hour < 18
            if (day_shift and not stopped and self.trucks_today < cap
                    and self.stock_t >= self.reserve_t + truck and local_hour % 2 == 0):
                destination = self._next_destination()
                self.trucks += 1
                self.trucks_today += 1
                self.stock_t -= truck
                self.shipped_by[destination] = self.shipped_by.get(destination, 0.0) + truck
                record(SimEvent(EventKind.SLAG_SHIPPED, self.path, self.hour * 3600.0, truck,
                                f"{self.path}/t{self.trucks}", destination,
                                f"T{self.trucks:06d}"))
                shipments.append((destination, truck))
        emit(self.path, "slag_stock_t", t1_h * 3600, self.stock_t)
        return shipments

    def _next_destination(self) -> str:
        # Largest remainder: each destination gets its share of the trucks, deterministically.
        total = sum(self.shipped_by.values()) + self.params.slag_truck_t
        shares = self.params.slag_use_shares
        return max(shares, key=lambda d: shares[d] * total - self.shipped_by.get(d, 0.0))
