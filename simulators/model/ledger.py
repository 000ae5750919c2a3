"""The simulator's ground truth: exact energy and mass flows, to check KPIs against.

Gas energy uses the true LHV at each step (the analyser and the lab see it with noise), and
electricity the equivalent value 0.1229 kgce/kWh (GB/T 2589 convention, the default of the
rules engine).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

MJ_PER_TCE = 29_307.6          # 1 kgce = 29,307.6 kJ
TCE_PER_KWH = 0.1229e-3        # equivalent value


@dataclass
class Ledger:
    gas_nm3: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    gas_mj: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    electricity_kwh: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    mass_t: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    slag_shipped_t: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # per simulated day (index from the start): ingots and energy, for drift checks
    daily_tce: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    daily_ingot_t: dict[int, float] = field(default_factory=lambda: defaultdict(float))

    def add_gas(self, consumer: str, nm3: float, lhv_mj: float, day: int) -> None:
        self.gas_nm3[consumer] += nm3
        self.gas_mj[consumer] += nm3 * lhv_mj
        self.daily_tce[day] += nm3 * lhv_mj / MJ_PER_TCE

    def add_electricity(self, area: str, kwh: float, day: int) -> None:
        self.electricity_kwh[area] += kwh
        self.daily_tce[day] += kwh * TCE_PER_KWH

    def add_mass(self, kind: str, tonnes: float, day: int) -> None:
        self.mass_t[kind] += tonnes
        if kind == "ingot_cast":
            self.daily_ingot_t[day] += tonnes

    @property
    def energy_tce(self) -> float:
        gas = sum(self.gas_mj.values()) / MJ_PER_TCE
        return gas + sum(self.electricity_kwh.values()) * TCE_PER_KWH

    def per_t_ingot(self, kind: str) -> float:
        ingots = self.mass_t["ingot_cast"]
        return self.mass_t[kind] / ingots if ingots else float("nan")

    def summary(self) -> dict[str, float]:
        ingots = self.mass_t["ingot_cast"]
        crude = self.mass_t["crown_discharged"]
        generated = self.mass_t["slag_discharged"]
        used = sum(v for k, v in self.slag_shipped_t.items() if k != "stockpile")
        return {
            "ingot_t": ingots,
            "crude_mg_t": crude,
            "energy_tce": self.energy_tce,
            "energy_tce_per_t_ingot": self.energy_tce / ingots if ingots else float("nan"),
            "slag_t_per_t_mg": generated / crude if crude else float("nan"),
            "fesi_t_per_t_mg": self.mass_t["fesi_consumed"] / crude if crude else float("nan"),
            "dolomite_t_per_t_mg": (self.mass_t["dolomite_consumed"] / crude
                                    if crude else float("nan")),
            "slag_utilisation_pct": 100.0 * used / generated if generated else float("nan"),
        }

    def daily_energy_tce_per_t(self, day: int) -> float:
        ingots = self.daily_ingot_t.get(day, 0.0)
        return self.daily_tce.get(day, 0.0) / ingots if ingots else float("nan")
