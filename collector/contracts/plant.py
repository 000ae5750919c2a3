"""The plant model: one YAML file per plant, validated with errors a plant engineer can act on.

site → areas → equipment → the signals each piece of equipment has, and the bindings that
say where each (asset, signal) is read: an OPC UA node or an MQTT topic, with the unit the
source reports in (converted into the catalogue unit) and an optional raw scale/offset.

Most bindings follow the source's address template (one PLC names its nodes the same way for
every retort); a binding override per signal gives any address, unit and scaling, which is
what `smeltwatch collect discover` writes for a real server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.contracts import signals, units

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(_Strict):
    en: str
    zh: str


class Shift(_Strict):
    name: str = Field(min_length=1)
    start: time


class Site(_Strict):
    id: Id
    name: Label
    timezone: str = "Asia/Shanghai"
    shifts: list[Shift] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "'Asia/Shanghai')") from None
        return value

    @field_validator("shifts")
    @classmethod
    def _distinct_starts(cls, value: list[Shift]) -> list[Shift]:
        starts = [s.start for s in value]
        if len(set(starts)) != len(starts):
            raise ValueError("two shifts start at the same time")
        return sorted(value, key=lambda s: s.start)


# --- sources ----------------------------------------------------------------------------------

class OpcUaSource(_Strict):
    id: Id
    protocol: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    namespace: str = Field(min_length=1, description="namespace URI of the plant's nodes")
    # `{asset}` is the asset path below the site, `{signal}` the catalogue name. An address is
    # a string identifier in `namespace`, or a NodeId in text form (`i=1001`, `s=…`,
    # `nsu=<uri>;s=…`; `ns=<index>;…` works but indexes may change when a server restarts).
    node_template: str = "{asset}.{signal}"
    # none | sign | sign_encrypt (Basic256Sha256) | auto: the strongest the server offers
    security: Literal["none", "sign", "sign_encrypt", "auto"] = "none"
    # subscription defaults; a binding may override sampling, queue size and deadband
    # 500 ms: a value waits at most that long in the server (1 s would miss a p99 < 1 s)
    publishing_interval_ms: float = Field(default=500.0, gt=0)
    sampling_interval_ms: float = Field(default=1000.0, ge=0)
    queue_size: int = Field(default=100, ge=1, le=100_000)


class MqttSource(_Strict):
    id: Id
    protocol: Literal["mqtt"]
    url: str = Field(pattern=r"^mqtts?://")
    topic_template: str = "smelter/v1/{site}/{area}/{equipment}/{signal}"


Source = Annotated[OpcUaSource | MqttSource, Field(discriminator="protocol")]


# --- bindings ---------------------------------------------------------------------------------

class BindingOverride(_Strict):
    """Where one signal of one asset is read, when the source's template does not fit."""

    address: str | None = Field(default=None, description="OPC UA NodeId or MQTT topic")
    json_path: str | None = Field(default=None, description="MQTT: where the value sits")
    unit: str | None = Field(default=None, description="the unit the source reports in")
    scale: float = 1.0
    offset: float = 0.0
    # OPC UA monitored-item settings (None: the source's defaults)
    sampling_interval_ms: float | None = Field(default=None, ge=0)
    queue_size: int | None = Field(default=None, ge=1, le=100_000)
    deadband: float | None = Field(default=None, gt=0, description="absolute, raw units")
    deadband_pct: float | None = Field(default=None, gt=0, le=100,
                                       description="of the node's EURange")

    @model_validator(mode="after")
    def _one_deadband(self) -> BindingOverride:
        if self.deadband is not None and self.deadband_pct is not None:
            raise ValueError("give deadband or deadband_pct, not both")
        return self


@dataclass(frozen=True, slots=True)
class Binding:
    """A resolved binding: source address → (asset, signal), value = raw * factor + offset."""

    source: str
    address: str
    asset: str
    signal: str
    factor: float
    offset: float
    json_path: str | None = None
    sampling_interval_ms: float | None = None
    queue_size: int | None = None
    deadband: float | None = None
    deadband_pct: float | None = None

    def convert(self, raw: float) -> float:
        return raw * self.factor + self.offset


# --- equipment --------------------------------------------------------------------------------

class Carrier(StrEnum):
    ELECTRICITY = "electricity"
    FUEL_GAS = "fuel_gas"
    WATER = "water"


class Stage(StrEnum):
    """Stages inside the GB 21347 boundary (dolomite to ingot), plus the plant's auxiliaries."""

    CALCINATION = "calcination"
    BRIQUETTING = "briquetting"
    REDUCTION = "reduction"
    REFINING = "refining"
    AUXILIARY = "auxiliary"
    SLAG_YARD = "slag_yard"


class _Equipment(_Strict):
    id: Id
    kind: str  # narrowed to a Literal by each kind below (the union's discriminator)
    name: Label | None = None
    source: Id | None = None
    bindings: dict[str, BindingOverride] = Field(default_factory=dict)
    omit: list[str] = Field(default_factory=list, description="signals this unit does not have")

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """(path below the equipment, '' for itself; the signals that asset has)."""
        raise NotImplementedError

    def signal_keys(self) -> Iterator[tuple[str, str]]:
        for sub, names in self.sub_assets():
            for name in names:
                if name not in self.omit:
                    yield sub, name


class RotaryKiln(_Equipment):
    kind: Literal["rotary_kiln"]

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        yield "", ("kiln_burning_zone_temp_c", "kiln_exhaust_temp_c",
                   "cooler_secondary_air_temp_c", "dolomite_feed_t_h", "calcined_output_t_h",
                   "calcined_loi_pct")


class ReductionFurnace(_Equipment):
    """Vertical retorts, double-regenerative burner pairs, bottom slag discharge."""

    kind: Literal["reduction_furnace"]
    retorts: int = Field(ge=1, le=200)
    zones: int = Field(ge=1, le=20)
    burner_pairs: int = Field(ge=1, le=40)
    # Configuration, not constants: the domain reference gives 10-24 h cycles and no firm
    # per-retort yield for large vertical retorts (§3.6, §8).
    cycle_h: float = Field(gt=0, le=72)
    retort_output_t_per_cycle: float = Field(gt=0, le=5)
    reversal_period_s: float = Field(gt=0, le=3600)

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        yield "", ("fuel_gas_flow_nm3_h", "fuel_gas_pressure_kpa", "flue_exhaust_temp_c",
                   "flue_o2_pct")
        for z in range(1, self.zones + 1):
            yield f"zone-{z}", ("zone_temp_c",)
        for b in range(1, self.burner_pairs + 1):
            yield f"burner-pair-{b}", ("reversal_valve_state", "reversal_count_total",
                                       "air_preheat_temp_c", "gas_preheat_temp_c")
        for r in range(1, self.retorts + 1):
            yield f"retort-{r:02d}", ("vacuum_pa", "condenser_water_temp_c", "cycle_state",
                                      "cycle_elapsed_h")

    def capacity_t_per_year(self) -> float:
        return self.retorts * self.retort_output_t_per_cycle * 8760.0 / self.cycle_h


class RefiningFurnace(_Equipment):
    kind: Literal["refining_furnace"]

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        yield "", ("refining_melt_temp_c", "refining_flue_temp_c")


class EnergyMeter(_Equipment):
    kind: Literal["energy_meter"]
    carrier: Carrier
    scope: str = Field(min_length=1, description="area id or area/equipment it meters")
    rollover_at: float | None = Field(default=None, gt=0,
                                      description="totaliser wraps to 0 at this value")

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        if self.carrier is Carrier.ELECTRICITY:
            yield "", ("electricity_kwh_total", "power_kw")
        elif self.carrier is Carrier.FUEL_GAS:
            yield "", ("gas_volume_nm3_total",)
        else:
            yield "", ("water_m3_total",)


class GasAnalyser(_Equipment):
    kind: Literal["gas_analyser"]

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        yield "", ("gas_lhv_mj_per_nm3",)


class WeatherStation(_Equipment):
    kind: Literal["weather_station"]

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        yield "", ("ambient_temp_c",)


class Weighbridge(_Equipment):
    """Sends production and material events (see contracts.events), no signals."""

    kind: Literal["weighbridge"]

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        yield "", ()


class SlagYard(_Equipment):
    kind: Literal["slag_yard"]

    def sub_assets(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        yield "", ("slag_stock_t",)


Equipment = Annotated[
    RotaryKiln | ReductionFurnace | RefiningFurnace | EnergyMeter | GasAnalyser
    | WeatherStation | Weighbridge | SlagYard,
    Field(discriminator="kind"),
]


class Area(_Strict):
    id: Id
    stage: Stage
    name: Label | None = None
    equipment: list[Equipment] = Field(default_factory=list)


class Plant(_Strict):
    site: Site
    sources: list[Source] = Field(default_factory=list)
    areas: list[Area] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Plant:
        problems = list(_cross_check(self))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- derived views --------------------------------------------------------------------
    def equipment(self) -> Iterator[tuple[Area, _Equipment]]:
        for area in self.areas:
            for item in area.equipment:
                yield area, item

    def asset_path(self, area: Area, item: _Equipment, sub: str = "") -> str:
        base = f"{self.site.id}/{area.id}/{item.id}"
        return f"{base}/{sub}" if sub else base

    def assets(self) -> dict[str, tuple[str, ...]]:
        """asset path → the signals it has."""
        out: dict[str, tuple[str, ...]] = {}
        for area, item in self.equipment():
            for sub, names in item.sub_assets():
                kept = tuple(n for n in names if n not in item.omit)
                out[self.asset_path(area, item, sub)] = kept
        return out

    def source(self, source_id: str) -> OpcUaSource | MqttSource:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise KeyError(source_id)

    def bindings(self) -> list[Binding]:
        return list(_resolve_bindings(self))

    def capacity_t_per_year(self) -> float:
        return sum(item.capacity_t_per_year() for _, item in self.equipment()
                   if isinstance(item, ReductionFurnace))

    def shift_at(self, instant: datetime) -> tuple[str, datetime, datetime]:
        """(shift name, start UTC, end UTC) of the shift that contains `instant`."""
        zone = ZoneInfo(self.site.timezone)
        local = instant.astimezone(zone)
        day = local.date()
        candidates = []
        for offset in (-1, 0, 1):
            d = day + timedelta(days=offset)
            for shift in self.site.shifts:
                start = datetime.combine(d, shift.start, tzinfo=zone)
                candidates.append((start, shift.name))
        candidates.sort()
        for (start, name), (end, _) in itertools.pairwise(candidates):
            if start <= local < end:
                return name, start.astimezone(UTC), end.astimezone(UTC)
        raise AssertionError("unreachable: three days of shifts cover any instant")


# --- cross-field checks -----------------------------------------------------------------------

def _where(area: Area, item: _Equipment) -> str:
    return f"areas[{area.id}].equipment[{item.id}]"


def _cross_check(plant: Plant) -> Iterator[str]:
    yield from _unique("sources", [s.id for s in plant.sources])
    yield from _unique("areas", [a.id for a in plant.areas])
    source_ids = {s.id for s in plant.sources}
    area_ids = {a.id for a in plant.areas}
    equipment_paths: set[str] = set()
    for area in plant.areas:
        yield from _unique(f"areas[{area.id}].equipment", [e.id for e in area.equipment])
        equipment_paths.update(f"{area.id}/{e.id}" for e in area.equipment)
    for area, item in plant.equipment():
        where = _where(area, item)
        if item.source is not None and item.source not in source_ids:
            yield (f"{where}.source: unknown source {item.source!r}; "
                   f"defined sources: {', '.join(sorted(source_ids)) or 'none'}")
        if item.source is None and any(True for _ in item.signal_keys()):
            yield (f"{where}.source: missing; name the source this equipment is read from "
                   "(or list its signals under 'omit')")
        yield from _check_signal_names(item, where)
        if isinstance(item, EnergyMeter) and item.scope not in area_ids | equipment_paths:
            yield (f"{where}.scope: {item.scope!r} is neither an area nor an area/equipment; "
                   f"areas: {', '.join(sorted(area_ids))}")
    yield from _duplicate_bindings(plant)


def _unique(where: str, ids: list[str]) -> Iterator[str]:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            yield f"{where}: duplicate id {i!r}; ids must be unique here"
        seen.add(i)


def _check_signal_names(item: _Equipment, where: str) -> Iterator[str]:
    has = {f"{sub}/{name}" if sub else name for sub, name in item.signal_keys()}
    plain = {name for _, names in item.sub_assets() for name in names}
    for name in item.omit:
        if name not in plain:
            yield _unknown_signal(f"{where}.omit", name, sorted(plain))
    for key, override in item.bindings.items():
        name = key.rsplit("/", 1)[-1]
        if name not in signals.CATALOGUE or key not in has:
            yield _unknown_signal(f"{where}.bindings", key, sorted(plain))
            continue
        if override.unit is not None:
            try:
                units.conversion(override.unit, signals.CATALOGUE[name].unit)
            except units.UnitError as exc:
                yield f"{where}.bindings.{key}.unit: {exc}"


def _unknown_signal(where: str, name: str, allowed: list[str]) -> str:
    known = "in the signal catalogue" if name.rsplit("/", 1)[-1] in signals.CATALOGUE else (
        "not in the signal catalogue")
    return (f"{where}: unknown signal {name!r} ({known}); this equipment has: "
            f"{', '.join(allowed)} (prefix a sub-asset as 'retort-07/vacuum_pa')")


def _duplicate_bindings(plant: Plant) -> Iterator[str]:
    seen: dict[tuple[str, str, str | None], str] = {}
    for binding in _resolve_bindings(plant, strict=False):
        key = (binding.source, binding.address, binding.json_path)
        here = f"{binding.asset}:{binding.signal}"
        if key in seen:
            yield (f"duplicate binding: source {binding.source!r} address {binding.address!r} "
                   f"is bound to both {seen[key]} and {here}; each address feeds one signal")
        seen[key] = here


# --- binding resolution -----------------------------------------------------------------------

def _resolve_bindings(plant: Plant, strict: bool = True) -> Iterator[Binding]:
    sources = {s.id: s for s in plant.sources}
    for area, item in plant.equipment():
        source = sources.get(item.source or "")
        if source is None:
            continue
        for sub, name in item.signal_keys():
            key = f"{sub}/{name}" if sub else name
            override = item.bindings.get(key, BindingOverride())
            asset = plant.asset_path(area, item, sub)
            address = override.address or _templated_address(plant, source, area, item, sub,
                                                              name)
            factor, offset = override.scale, override.offset
            if override.unit is not None:
                try:
                    u_factor, u_offset = units.conversion(override.unit,
                                                          signals.CATALOGUE[name].unit)
                except units.UnitError:
                    if strict:
                        raise
                    continue
                # raw → source unit (scale/offset) → catalogue unit
                factor, offset = factor * u_factor, offset * u_factor + u_offset
            yield Binding(source.id, address, asset, name, factor, offset, override.json_path,
                          override.sampling_interval_ms, override.queue_size, override.deadband,
                          override.deadband_pct)


def _templated_address(plant: Plant, source: OpcUaSource | MqttSource, area: Area,
                       item: _Equipment, sub: str, name: str) -> str:
    equipment = f"{item.id}/{sub}" if sub else item.id
    fields = {"site": plant.site.id, "area": area.id, "equipment": equipment, "signal": name,
              "asset": f"{area.id}/{equipment}"}
    template = source.node_template if isinstance(source, OpcUaSource) else source.topic_template
    return template.format(**fields)
