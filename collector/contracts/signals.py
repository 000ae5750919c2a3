"""The signal catalogue: every signal smeltwatch stores, with its one unit and its kind.

Signals are named in the plant's words with the unit as a suffix. A signal belongs to an
asset (ISA-95-like path); the same signal name on many assets (zone_temp_c on every zone)
is one catalogue entry. `physical_range` bounds what the quantity can physically be; a value
outside it is a broken instrument or a bad binding and is dead-lettered, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from collector.contracts import units


class SignalKind(StrEnum):
    GAUGE = "gauge"      # a level at an instant (temperature, pressure, flow)
    COUNTER = "counter"  # a cumulative totaliser; rolls over and may reset
    STATE = "state"      # an enumerated state encoded as a number (see `states`)
    EVENT = "event"      # a discrete occurrence; the value is its magnitude or 1


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    unit: str
    kind: SignalKind
    en: str
    zh: str
    physical_range: tuple[float, float]
    states: tuple[str, ...] = ()

    def state_name(self, code: float) -> str:
        index = int(code)
        return self.states[index] if 0 <= index < len(self.states) else f"unknown({code})"


G, C, S = SignalKind.GAUGE, SignalKind.COUNTER, SignalKind.STATE
RETORT_CYCLE_STATES = (
    "idle", "charging", "evacuating", "reducing", "vacuum_break", "crown_discharge",
    "slag_discharge",
)
REVERSAL_STATES = ("A", "B")

_SIGNALS: tuple[Signal, ...] = (
    # Calcination: rotary kiln and cooler
    Signal("kiln_burning_zone_temp_c", "°C", G, "Kiln burning-zone temperature",
           "回转窑烧成带温度", (-50.0, 1800.0)),
    Signal("kiln_exhaust_temp_c", "°C", G, "Kiln exhaust gas temperature",
           "回转窑排烟温度", (-50.0, 1200.0)),
    Signal("cooler_secondary_air_temp_c", "°C", G, "Cooler secondary-air temperature",
           "冷却机二次风温度", (-50.0, 1200.0)),
    Signal("dolomite_feed_t_h", "t/h", G, "Raw dolomite feed rate", "白云石喂料量",
           (0.0, 200.0)),
    Signal("calcined_output_t_h", "t/h", G, "Calcined dolomite output rate", "煅白产量",
           (0.0, 200.0)),
    Signal("calcined_loi_pct", "%", G, "Residual loss on ignition of calcined dolomite",
           "煅白灼减", (0.0, 100.0)),
    # Reduction furnace (vertical retorts, double-regenerative burners)
    Signal("zone_temp_c", "°C", G, "Furnace zone temperature", "还原炉炉膛分区温度",
           (-50.0, 1600.0)),
    Signal("fuel_gas_flow_nm3_h", "Nm³/h", G, "Fuel-gas flow", "燃气流量", (0.0, 100_000.0)),
    Signal("fuel_gas_pressure_kpa", "kPa", G, "Fuel-gas pressure", "燃气压力", (0.0, 1_000.0)),
    Signal("air_preheat_temp_c", "°C", G, "Combustion-air temperature after the regenerator",
           "空气蓄热预热温度", (-50.0, 1400.0)),
    Signal("gas_preheat_temp_c", "°C", G, "Fuel-gas temperature after the regenerator",
           "煤气蓄热预热温度", (-50.0, 1400.0)),
    Signal("flue_exhaust_temp_c", "°C", G, "Flue-gas exhaust temperature", "排烟温度",
           (-50.0, 1400.0)),
    Signal("flue_o2_pct", "%", G, "Flue-gas oxygen", "烟气含氧量", (0.0, 21.0)),
    Signal("reversal_valve_state", "state", S, "Regenerator reversal valve position (A/B)",
           "换向阀状态", (0.0, 1.0), REVERSAL_STATES),
    Signal("reversal_count_total", "count", C, "Reversals since commissioning",
           "换向次数累计", (0.0, 1e12)),
    # Retort
    Signal("vacuum_pa", "Pa", G, "Retort vacuum (absolute pressure)", "还原罐真空度",
           (0.0, 120_000.0)),
    Signal("condenser_water_temp_c", "°C", G, "Condenser cooling-water temperature",
           "结晶器冷却水温度", (-20.0, 150.0)),
    Signal("cycle_state", "state", S, "Retort cycle state", "还原周期状态",
           (0.0, float(len(RETORT_CYCLE_STATES) - 1)), RETORT_CYCLE_STATES),
    Signal("cycle_elapsed_h", "h", G, "Time since the retort was charged", "还原周期已用时间",
           (0.0, 200.0)),
    # Refining and casting
    Signal("refining_melt_temp_c", "°C", G, "Refining melt temperature", "精炼熔体温度",
           (-50.0, 1200.0)),
    Signal("refining_flue_temp_c", "°C", G, "Refining-furnace flue temperature",
           "精炼炉排烟温度", (-50.0, 1400.0)),
    # Energy meters
    Signal("electricity_kwh_total", "kWh", C, "Active energy import (totaliser)",
           "有功电能累计", (0.0, 1e15)),
    Signal("power_kw", "kW", G, "Active power", "有功功率", (-1e6, 1e6)),
    Signal("gas_volume_nm3_total", "Nm³", C, "Fuel-gas volume at normal conditions (totaliser)",
           "燃气累计流量(标况)", (0.0, 1e15)),
    Signal("gas_lhv_mj_per_nm3", "MJ/Nm³", G, "Fuel-gas lower heating value (analyser)",
           "燃气低位发热量", (0.0, 60.0)),
    Signal("water_m3_total", "m³", C, "Fresh-water volume (totaliser)", "新水累计用量",
           (0.0, 1e15)),
    # Site
    Signal("ambient_temp_c", "°C", G, "Ambient air temperature", "环境温度", (-60.0, 60.0)),
    Signal("slag_stock_t", "t", G, "Reduction-slag stock in the yard", "镁渣库存",
           (0.0, 1e8)),
)

CATALOGUE: dict[str, Signal] = {s.name: s for s in _SIGNALS}


class UnknownSignalError(KeyError):
    def __str__(self) -> str:
        return f"unknown signal {self.args[0]!r}: not in the signal catalogue"


def signal(name: str) -> Signal:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownSignalError(name) from None


def _check_catalogue() -> None:
    for s in _SIGNALS:
        units.lookup(s.unit)  # every catalogue unit is a known unit
        if s.kind is SignalKind.STATE and not s.states:
            raise ValueError(f"state signal {s.name} has no state names")


_check_catalogue()
