"""Project conventions a reviewer would otherwise check by hand."""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from collector.contracts import CATALOGUE, SignalKind, load_plant
from collector.contracts.units import lookup
from tests.conftest import REPO

TOP_LEVEL = ("collector", "service", "rules", "simulators", "dashboards", "tests", "bench",
             "scripts", "docs")


def test_every_top_level_folder_has_a_readme() -> None:
    missing = [d for d in TOP_LEVEL if not (REPO / d / "README.md").is_file()]
    assert not missing, f"add a README.md to: {missing}"


def test_architecture_doc_exists() -> None:
    assert (REPO / "docs" / "architecture.md").is_file()


def test_every_plant_file_loads() -> None:
    plants = sorted((REPO / "plants").glob("*.yaml"))
    assert plants
    for path in plants:
        assert load_plant(path).bindings()


def test_catalogue_units_and_names() -> None:
    suffix_units = {"_c": "°C", "_pa": "Pa", "_kpa": "kPa", "_nm3_h": "Nm³/h", "_pct": "%",
                    "_t_h": "t/h", "_kw": "kW", "_h": "h", "_t": "t"}
    for name, entry in CATALOGUE.items():
        lookup(entry.unit)
        matching = [s for s in suffix_units if name.endswith(s)]
        if matching and not name.endswith("_total"):
            suffix = max(matching, key=len)
            assert entry.unit == suffix_units[suffix], f"{name} is in {entry.unit}"
        if entry.kind is SignalKind.COUNTER:
            assert name.endswith("_total"), f"counter {name} must end in _total"
        assert entry.en and entry.zh
        low, high = entry.physical_range
        assert low < high


def test_every_cli_entry_point_loads() -> None:
    for entry in entry_points(group="smeltwatch.commands"):
        target = entry.load()
        assert isinstance(target, typer.Typer) or callable(target), entry.name
