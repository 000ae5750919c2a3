"""Scenarios as data: `scenarios/<name>/scenario.yaml` (what happens) and `expected.yaml`
(what a correct system must show). Loaded and validated here with errors naming the file."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from collector.contracts import Plant, load_plant

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
REPO = Path(__file__).resolve().parent.parent
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*"
                       r"(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


def parse_duration(value: Any) -> timedelta:
    """'3d 4h', '90m', '45s', 3600 (seconds) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {value!r} (write e.g. '3d 4h', '90m', '45s')")
    d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaultKind(StrEnum):
    VACUUM_LEAK = "vacuum_leak"                    # target: retort
    RETORT_BURN_THROUGH = "retort_burn_through"    # target: retort
    REVERSAL_VALVE_STUCK = "reversal_valve_stuck"  # target: burner pair
    REGENERATOR_FOULING = "regenerator_fouling"    # target: furnace (or all furnaces)
    LOW_LHV = "low_lhv"                            # site-wide fuel gas quality
    SLAG_SHIPMENTS_STOP = "slag_shipments_stop"    # slag yard
    METER_RESET = "meter_reset"                    # target: meter
    DATA_DROPOUT = "data_dropout"                  # target: source id: nothing published
    BAD_QUALITY = "bad_quality"                    # target: asset: values sent with Bad status
    CLOCK_SKEW = "clock_skew"                      # target: source id: timestamps offset
    LATE_EVENT = "late_event"                      # the first event of a kind after `at` is late


class Fault(_Strict):
    kind: FaultKind
    at: Duration = Field(description="offset from the scenario start")
    duration: Duration | None = None
    target: str | None = Field(default=None, description="asset below the site, or source id")
    params: dict[str, float | str] = Field(default_factory=dict)

    def active(self, offset_s: float) -> bool:
        start = self.at.total_seconds()
        if offset_s < start:
            return False
        return self.duration is None or offset_s < start + self.duration.total_seconds()

    def param(self, name: str, default: float) -> float:
        return float(self.params.get(name, default))


class SimParameters(_Strict):
    """Plant physics the scenario may tune. Defaults give ≈ 3.8 tce per t of ingot."""

    lhv_mj_per_nm3: float = 7.5            # semi-coke off-gas, low-calorific [INF]
    lhv_variation: float = 0.15            # standard deviation of the LHV walk, MJ/Nm³
    # Fuel-gas heat per t of ingot at design output, by stage (tce/t; 1 tce = 29,307.6 MJ)
    reduction_tce_per_t: float = 2.67
    calcination_tce_per_t: float = 0.75
    refining_tce_per_t: float = 0.10
    # Electric loads by area (kW); the equivalent value 0.1229 kgce/kWh makes ≈ 0.29 tce/t
    electric_kw: dict[str, float] = Field(default_factory=lambda: {
        "calcination": 400.0, "briquetting": 500.0, "reduction": 600.0, "refining": 100.0,
        "utilities": 200.0})
    water_m3_per_h: float = 12.0
    slag_t_per_t_mg: float = 6.0
    fesi_t_per_t_mg: float = 1.05
    dolomite_t_per_t_mg: float = 10.0
    fluorite_t_per_t_mg: float = 0.15
    refining_recovery: float = 0.965
    zone_setpoint_c: float = 1220.0
    slag_use_shares: dict[str, float] = Field(default_factory=lambda: {
        "cement": 0.5, "concrete_bricks": 0.25, "backfill": 0.15, "stockpile": 0.10})
    slag_truck_t: float = 30.0
    slag_trucks_per_day: int = 5           # day shift only, one every two hours at most


class Scenario(_Strict):
    name: str
    description: str
    plant: str = "plants/demo.yaml"
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    duration: Duration
    speed: float = Field(default=3600.0, gt=0, description="simulated seconds per wall second")
    sampling: Duration = timedelta(seconds=60)
    seed: int = 1
    parameters: SimParameters = SimParameters()
    faults: list[Fault] = Field(default_factory=list)
    meter_start: dict[str, float] = Field(
        default_factory=dict, description="meter asset below the site → initial reading")

    def load_plant(self) -> Plant:
        return load_plant(REPO / self.plant)


class ScenarioError(ValueError):
    pass


def scenario_dir(name: str) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    path = SCENARIOS / name
    if not path.is_dir():
        raise ScenarioError(f"no scenario {name!r}; available: {', '.join(list_scenarios())}")
    return path


def list_scenarios() -> list[str]:
    return sorted(p.name for p in SCENARIOS.iterdir() if (p / "scenario.yaml").is_file())


def load_scenario(name: str) -> Scenario:
    path = scenario_dir(name) / "scenario.yaml"
    try:
        return Scenario.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def load_expected(name: str) -> dict[str, Any]:
    path = scenario_dir(name) / "expected.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping")
    return data
