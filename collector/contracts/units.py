"""Units of measure and conversions into the catalogue's canonical units.

Every signal in the catalogue has one fixed unit. A binding may read a source that reports in
another unit of the same quantity (kPa for a vacuum in Pa, MWh for a counter in kWh); the
conversion is derived from this table, so a plant engineer never hand-types a factor that a
unit name already implies. A unit of another quantity is a configuration error.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Unit:
    symbol: str
    quantity: str
    # value_in_canonical = value * factor + offset
    factor: float = 1.0
    offset: float = 0.0


_UNITS: tuple[Unit, ...] = (
    Unit("°C", "temperature"),
    Unit("K", "temperature", 1.0, -273.15),
    Unit("Pa", "pressure"),
    Unit("kPa", "pressure", 1_000.0),
    Unit("hPa", "pressure", 100.0),
    Unit("mbar", "pressure", 100.0),
    Unit("Torr", "pressure", 133.322_368),
    Unit("Nm³", "gas_volume"),
    Unit("kNm³", "gas_volume", 1_000.0),
    Unit("Nm³/h", "gas_flow"),
    Unit("kNm³/h", "gas_flow", 1_000.0),
    Unit("kWh", "energy_electric"),
    Unit("MWh", "energy_electric", 1_000.0),
    Unit("kW", "power"),
    Unit("MW", "power", 1_000.0),
    Unit("MJ/Nm³", "heating_value"),
    Unit("kJ/Nm³", "heating_value", 0.001),
    # 1 kcal = 4.1868 kJ (international table calorie, as in GB/T 2589)
    Unit("kcal/Nm³", "heating_value", 0.004_186_8),
    Unit("t", "mass"),
    Unit("kg", "mass", 0.001),
    Unit("t/h", "mass_flow"),
    Unit("kg/h", "mass_flow", 0.001),
    Unit("%", "fraction"),
    Unit("h", "duration"),
    Unit("min", "duration", 1.0 / 60.0),
    Unit("s", "duration", 1.0 / 3600.0),
    Unit("m³", "water_volume"),
    Unit("m³/h", "water_flow"),
    Unit("state", "state"),
    Unit("count", "count"),
    Unit("kgce", "energy_coal_equivalent"),
    Unit("tce", "energy_coal_equivalent", 1_000.0),
)

UNITS: dict[str, Unit] = {u.symbol: u for u in _UNITS}
# Spellings people type in YAML and that OPC UA servers send; mapped to the symbols above.
ALIASES: dict[str, str] = {
    "degC": "°C", "C": "°C", "celsius": "°C", "Nm3": "Nm³", "kNm3": "kNm³", "Nm3/h": "Nm³/h",
    "kNm3/h": "kNm³/h", "MJ/Nm3": "MJ/Nm³", "kJ/Nm3": "kJ/Nm³", "kcal/Nm3": "kcal/Nm³",
    "m3": "m³", "m3/h": "m³/h", "percent": "%", "pct": "%",
}


class UnitError(ValueError):
    """A unit that is unknown or measures another quantity than the signal."""


def lookup(symbol: str) -> Unit:
    unit = UNITS.get(ALIASES.get(symbol, symbol))
    if unit is None:
        known = ", ".join(sorted(UNITS))
        raise UnitError(f"unknown unit {symbol!r}; known units: {known}")
    return unit


def same_quantity(quantity: str) -> list[str]:
    return [u.symbol for u in _UNITS if u.quantity == quantity]


def conversion(source: str, target: str) -> tuple[float, float]:
    """(factor, offset) such that value_in_target = value_in_source * factor + offset."""
    src, dst = lookup(source), lookup(target)
    if src.quantity != dst.quantity:
        allowed = ", ".join(same_quantity(dst.quantity))
        raise UnitError(
            f"unit {source!r} measures {src.quantity}, but the signal is in {target!r} "
            f"({dst.quantity}); allowed units: {allowed}"
        )
    factor = src.factor / dst.factor
    offset = (src.offset - dst.offset) / dst.factor
    return factor, offset
