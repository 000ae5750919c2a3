"""Tests of the MQTT source's pure layers: topic map and payload decoders (no broker).

`vendor_plant()` is the demo plant with the bindings real MQTT gateways need: a unit and a
scale/offset on template topics, a vendor JSON read by json_path, a wildcard address and two
Sparkplug metrics of one device.
"""

from __future__ import annotations

from functools import cache

from collector.contracts import Plant, load_plant, parse_plant
from tests.conftest import REPO

DEMO_YAML = REPO / "plants" / "demo.yaml"
SOURCE = "plant-mqtt"
SITE = "yulin-1"

SPARKPLUG_TOPIC = "spBv1.0/yulin/DDATA/edge-1/lab"
VENDOR_TOPIC = "vendor/meters/water-main"
WEATHER_FILTER = "vendor/gw-7/+/ambient"

# (demo.yaml line, the same equipment with binding overrides)
_OVERRIDES = {
    "{id: elec-calcination, kind: energy_meter, carrier: electricity, scope: calcination, "
    "source: plant-mqtt, rollover_at: 100000000}":
        "{id: elec-calcination, kind: energy_meter, carrier: electricity, scope: calcination, "
        "source: plant-mqtt, rollover_at: 100000000, "
        "bindings: {power_kw: {scale: 2.0, offset: -10.0}}}",
    "{id: gas-furnace-01, kind: energy_meter, carrier: fuel_gas, scope: reduction/furnace-01, "
    "source: plant-mqtt, rollover_at: 1000000000}":
        "{id: gas-furnace-01, kind: energy_meter, carrier: fuel_gas, scope: reduction/furnace-01,"
        " source: plant-mqtt, rollover_at: 1000000000, "
        "bindings: {gas_volume_nm3_total: {unit: kNm³, scale: 0.1}}}",
    "{id: water-main, kind: energy_meter, carrier: water, scope: utilities, source: plant-mqtt}":
        "{id: water-main, kind: energy_meter, carrier: water, scope: utilities, "
        f"source: plant-mqtt, bindings: {{water_m3_total: {{address: {VENDOR_TOPIC}, "
        "json_path: 'data.totals[1]'}}}",
    "{id: weather, kind: weather_station, source: plant-mqtt}":
        "{id: weather, kind: weather_station, source: plant-mqtt, bindings: "
        f"{{ambient_temp_c: {{address: '{WEATHER_FILTER}', unit: K}}}}}}",
    "{id: lhv-analyser, kind: gas_analyser, source: plant-mqtt, ":
        "{id: lhv-analyser, kind: gas_analyser, source: plant-mqtt, bindings: "
        f"{{gas_lhv_mj_per_nm3: {{address: {SPARKPLUG_TOPIC}, json_path: Analyser/LHV.PV, "
        "unit: kcal/Nm³}}, ",
    "{id: yard, kind: slag_yard, source: plant-mqtt}":
        "{id: yard, kind: slag_yard, source: plant-mqtt, bindings: "
        f"{{slag_stock_t: {{address: {SPARKPLUG_TOPIC}, json_path: Yard/Stock, unit: kg}}}}}}",
}


@cache
def demo_plant() -> Plant:
    return load_plant(DEMO_YAML)


@cache
def vendor_plant() -> Plant:
    text = DEMO_YAML.read_text(encoding="utf-8")
    for old, new in _OVERRIDES.items():
        assert old in text, f"demo.yaml changed: {old!r} not found"
        text = text.replace(old, new)
    return parse_plant(text, "vendor-demo.yaml")


def topic(equipment: str, signal: str, area: str = "utilities") -> str:
    """A template topic of the demo plant, as the simulator publishes it."""
    return f"smelter/v1/{SITE}/{area}/{equipment}/{signal}"
