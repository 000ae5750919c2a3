"""The plant model: the demo plant loads; each kind of mistake gets a message that names the
file, the path of the key and what is allowed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.contracts import CATALOGUE, Plant, PlantConfigError, load_plant, parse_plant
from tests.conftest import REPO

DEMO = REPO / "plants" / "demo.yaml"


def demo_text() -> str:
    return DEMO.read_text(encoding="utf-8")


def errors_of(text: str, path: str = "plants/broken.yaml") -> str:
    with pytest.raises(PlantConfigError) as caught:
        parse_plant(text, path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_demo_plant_is_one_vertical_retort_line() -> None:
    plant = load_plant(DEMO)
    furnaces = [e for _, e in plant.equipment() if e.kind == "reduction_furnace"]
    assert len(furnaces) == 4
    assert all(16 <= f.retorts <= 24 for f in furnaces)  # type: ignore[attr-defined]
    kinds = {e.kind for _, e in plant.equipment()}
    assert {"rotary_kiln", "refining_furnace", "energy_meter", "gas_analyser", "weighbridge",
            "slag_yard"} <= kinds
    carriers = {e.carrier for _, e in plant.equipment() if e.kind == "energy_meter"}  # type: ignore[attr-defined]
    assert {"electricity", "fuel_gas"} <= carriers
    assert plant.site.timezone == "Asia/Shanghai"


def test_capacity_follows_from_retort_output_and_cycle_length() -> None:
    plant = load_plant(DEMO)
    # 4 furnaces × 20 retorts × 0.20 t per cycle × 8760 h / 20 h per cycle
    assert plant.capacity_t_per_year() == pytest.approx(4 * 20 * 0.20 * 8760 / 20)


def test_every_bound_signal_is_in_the_catalogue_and_addresses_are_unique() -> None:
    plant = load_plant(DEMO)
    bindings = plant.bindings()
    assert all(b.signal in CATALOGUE for b in bindings)
    addresses = [(b.source, b.address) for b in bindings]
    assert len(addresses) == len(set(addresses))
    retort_vacuum = [b for b in bindings if b.asset == "yulin-1/reduction/furnace-03/retort-07"
                     and b.signal == "vacuum_pa"]
    assert retort_vacuum and retort_vacuum[0].source == "plc-furnace-03"
    meter = [b for b in bindings if b.asset == "yulin-1/utilities/gas-furnace-01"]
    assert meter[0].address == "smelter/v1/yulin-1/utilities/gas-furnace-01/gas_volume_nm3_total"


def test_unknown_key_names_the_path_and_the_allowed_keys() -> None:
    text = demo_text().replace("retorts: 20", "retorts: 20\n        retort_count: 20", 1)
    message = errors_of(text)
    assert "areas[reduction].equipment[furnace-01]: unknown key 'retort_count'" in message
    assert "allowed keys here:" in message and "retorts" in message and "cycle_h" in message


def test_wrong_unit_names_the_binding_and_the_units_allowed() -> None:
    text = demo_text().replace(
        "reversal_period_s: 60",
        "reversal_period_s: 60\n        bindings:\n          retort-07/vacuum_pa: {unit: degC}", 1)
    message = errors_of(text)
    assert "areas[reduction].equipment[furnace-01].bindings.retort-07/vacuum_pa.unit" in message
    assert "measures temperature" in message
    assert "allowed units: Pa, kPa, hPa, mbar, Torr" in message


def test_unit_of_the_same_quantity_is_converted() -> None:
    text = demo_text().replace(
        "reversal_period_s: 60",
        "reversal_period_s: 60\n        bindings:\n          retort-07/vacuum_pa: {unit: kPa}", 1)
    plant = parse_plant(text)
    binding = next(b for b in plant.bindings()
                   if b.asset.endswith("furnace-01/retort-07") and b.signal == "vacuum_pa")
    assert binding.convert(0.0133) == pytest.approx(13.3)


def test_duplicate_binding_names_both_signals() -> None:
    text = demo_text().replace(
        "reversal_period_s: 60",
        "reversal_period_s: 60\n        bindings:\n"
        "          retort-01/vacuum_pa: {address: 'ns=2;i=5001'}\n"
        "          retort-02/vacuum_pa: {address: 'ns=2;i=5001'}", 1)
    message = errors_of(text)
    assert "duplicate binding: source 'plc-furnace-01' address 'ns=2;i=5001'" in message
    assert "retort-01:vacuum_pa" in message and "retort-02:vacuum_pa" in message


def test_unknown_signal_lists_what_the_equipment_has() -> None:
    text = demo_text().replace(
        "reversal_period_s: 60",
        "reversal_period_s: 60\n        bindings:\n          retort-07/vacum_pa: {unit: kPa}", 1)
    message = errors_of(text)
    assert "areas[reduction].equipment[furnace-01].bindings: unknown signal 'retort-07/vacum_pa'"\
        in message
    assert "not in the signal catalogue" in message
    assert "vacuum_pa" in message


def test_signal_the_equipment_does_not_have() -> None:
    text = demo_text().replace("source: plc-kiln,", "source: plc-kiln, omit: [vacuum_pa],", 1)
    message = errors_of(text)
    assert "areas[calcination].equipment[kiln-1].omit: unknown signal 'vacuum_pa'" in message
    assert "kiln_burning_zone_temp_c" in message


def test_duplicate_yaml_key_is_an_error_not_a_silent_override() -> None:
    text = demo_text().replace("retorts: 20", "retorts: 20\n        retorts: 24", 1)
    message = errors_of(text)
    assert "duplicate key 'retorts'" in message


def test_unknown_source_and_bad_scope_and_time_zone() -> None:
    text = (demo_text()
            .replace("source: plc-refining", "source: plc-refinery")
            .replace("scope: briquetting", "scope: briquetting-hall")
            .replace("timezone: Asia/Shanghai", "timezone: China/Yulin"))
    message = errors_of(text)
    assert "site.timezone: unknown time zone 'China/Yulin'" in message
    # pydantic stops at the field errors; fix those and the cross-checks speak
    message = errors_of(text.replace("timezone: China/Yulin", "timezone: Asia/Shanghai"))
    assert "equipment[refining-1].source: unknown source 'plc-refinery'" in message
    assert "equipment[elec-briquetting].scope: 'briquetting-hall' is neither an area" in message


def test_wrong_kind_lists_the_kinds() -> None:
    message = errors_of(demo_text().replace("kind: rotary_kiln", "kind: shaft_kiln"))
    assert "areas[calcination].equipment[kiln-1]" in message
    assert "'rotary_kiln'" in message and "'reduction_furnace'" in message


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(PlantConfigError, match="cannot read the file"):
        load_plant(tmp_path / "nope.yaml")
    assert "not valid YAML" in errors_of("site: [unclosed")


def test_shift_calendar_in_plant_time_zone() -> None:
    plant: Plant = load_plant(DEMO)
    # 23:30 UTC is 07:30 next morning in Yulin: the night shift 00:00-08:00 local
    name, start, end = plant.shift_at(datetime(2026, 11, 1, 23, 30, tzinfo=UTC))
    assert name == "night"
    assert start == datetime(2026, 11, 1, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    assert plant.shift_at(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))[0] == "day"
