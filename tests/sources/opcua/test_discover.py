"""`smeltwatch collect discover` against the demo plant's simulated furnace PLC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from asyncua import ua
from typer.testing import CliRunner

from collector.contracts import load_plant, parse_plant
from collector.sources.opcua.cli import certs_app, discover_command
from collector.sources.opcua.discover import (
    BrowseResult,
    DiscoverError,
    Discovery,
    Variable,
    discover,
    render_yaml,
    suggest_signal,
)
from collector.sources.opcua.pki import Pki
from simulators.runner import RunOptions, ScenarioRun
from tests.conftest import REPO
from tests.simulators.conftest import free_port, short_scenario

FURNACE = "plc-furnace-01"
BLOCK = "yulin-1/reduction/furnace-01"
VACUUM = "nsu=urn:smeltwatch:yulin-1;s=reduction/furnace-01/retort-07.vacuum_pa"
VARIABLES = 4 + 4 + 6 * 4 + 20 * 4  # furnace, zones, burner pairs, retorts
MAX_PER_BROWSE, MAX_PER_READ = 7, 100  # operation limits the PLC publishes in these tests


@dataclass
class Server:
    url: str
    run: ScenarioRun


async def _serve(source: str) -> Server:
    plant = load_plant(REPO / "plants" / "demo.yaml")
    port = free_port()
    run = ScenarioRun(plant, short_scenario(hours=1), RunOptions(
        speed=0, only={source}, opcua_ports={source: port}))
    await run.start()
    return Server(f"opc.tcp://127.0.0.1:{port}", run)


@pytest.fixture(scope="module")
async def furnace() -> AsyncIterator[Server]:
    """The furnace PLC, publishing small MaxNodesPerBrowse / MaxNodesPerRead limits."""
    server = await _serve(FURNACE)
    limits = server.run.servers[0].device.server
    for node, value in (
            (ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse,
             MAX_PER_BROWSE),
            (ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
             MAX_PER_READ)):
        await limits.get_node(ua.NodeId(node)).write_value(ua.Variant(value,
                                                                      ua.VariantType.UInt32))
    try:
        yield server
    finally:
        await server.run.close()


def _options(tmp_path: Path) -> dict[str, Any]:
    return {"security": "none", "pki": Pki(tmp_path / "pki"), "cache_dir": tmp_path / "cache"}


async def test_the_skeleton_binds_the_furnace_and_loads_into_the_plant(
        furnace: Server, tmp_path: Path) -> None:
    found = await discover(furnace.url, **_options(tmp_path))
    assert not found.from_cache
    result = found.result
    assert len(result.variables) == VARIABLES
    assert not result.cut_by_max_nodes and result.beyond_max_depth == 0
    # batched within the server's published limits
    stats = result.stats
    assert (stats.server_max_nodes_per_browse, stats.server_max_nodes_per_read) == (
        MAX_PER_BROWSE, MAX_PER_READ)
    assert stats.largest_browse == MAX_PER_BROWSE and stats.browse_requests > VARIABLES / 7
    assert stats.largest_read == MAX_PER_READ and stats.read_requests > 5

    text = render_yaml(found)
    assert text.startswith(f"# smeltwatch binding skeleton: smeltwatch collect discover "
                           f"{furnace.url}\n# server: smeltwatch simulated PLC {FURNACE}")
    assert f"    address: {VACUUM}\n    unit: Pa\n" in text
    skeleton = yaml.safe_load(text)
    assert list(skeleton) == [BLOCK]
    bindings = skeleton[BLOCK]
    assert bindings["retort-07/vacuum_pa"] == {"address": VACUUM, "unit": "Pa"}
    assert "    # signal: vacuum_pa (the browse name)\n" in text
    assert bindings["fuel_gas_flow_nm3_h"]["unit"] == "Nm³/h"
    assert "    # TODO: signal?" not in text  # every node of the simulated PLC is catalogued
    vacuum = next(v for v in result.variables if v.node_id == VACUUM)
    assert vacuum.browse_path == ("yulin-1", "reduction", "furnace-01", "retort-07", "vacuum_pa")
    assert (vacuum.data_type, vacuum.unit, vacuum.unit_code) == ("Double", "Pa", "PAL")
    assert vacuum.eu_range == (0.0, 120_000.0) and vacuum.historizing
    assert vacuum.access_level is not None and vacuum.access_level & 0b101 == 0b101

    # pasted under the furnace's `bindings:`, the plant model accepts every entry
    plant_yaml = yaml.safe_load((REPO / "plants" / "demo.yaml").read_text(encoding="utf-8"))
    reduction = next(a for a in plant_yaml["areas"] if a["id"] == "reduction")
    reduction["equipment"][0]["bindings"] = bindings
    plant = parse_plant(yaml.safe_dump(plant_yaml, allow_unicode=True))
    bound = {(b.asset, b.signal): b for b in plant.bindings() if b.source == FURNACE}
    assert bound[("yulin-1/reduction/furnace-01/retort-07", "vacuum_pa")].address == VACUUM
    assert sum(b.address.startswith("nsu=") for b in bound.values()) == VARIABLES


async def test_max_nodes_cuts_the_browse_and_says_so(furnace: Server, tmp_path: Path) -> None:
    found = await discover(furnace.url, max_nodes=20, **_options(tmp_path))
    assert found.result.cut_by_max_nodes
    assert 0 < len(found.result.variables) < 20
    text = render_yaml(found)
    assert "# CUT SHORT: the browse stopped at --max-nodes 20; the server has more nodes" in text
    assert yaml.safe_load(text)


async def test_max_depth_leaves_deeper_nodes_out_and_says_so(furnace: Server,
                                                             tmp_path: Path) -> None:
    found = await discover(furnace.url, max_depth=4, **_options(tmp_path))
    result = found.result
    assert len(result.variables) == 4  # only the furnace's own (retorts etc. are one deeper)
    assert result.beyond_max_depth == VARIABLES - 4
    assert (f"# CUT SHORT: {VARIABLES - 4} node(s) lie deeper than --max-depth 4"
            in render_yaml(found))


async def test_the_cache_is_reused_without_asking_the_server(tmp_path: Path) -> None:
    kiln = await _serve("plc-kiln")
    try:
        first = await discover(kiln.url, **_options(tmp_path))
    finally:
        await kiln.run.close()
    assert not first.from_cache
    assert first.cache_file.parent == tmp_path / "cache"
    assert first.cache_file.name == f"127-0-0-1-{kiln.url.rsplit(':', 1)[1]}.json"
    assert first.cache_file.exists()

    # the server is gone: only the cache can answer
    again = await discover(kiln.url, **_options(tmp_path))
    assert again.from_cache
    assert again.result.variables == first.result.variables
    assert again.result.stats.browse_requests == 0
    assert f"(from the cache {first.cache_file}, " in render_yaml(again)

    with pytest.raises(DiscoverError, match=f"cannot reach the OPC UA server at {kiln.url}"):
        await discover(kiln.url, refresh=True, **_options(tmp_path))
    with pytest.raises(DiscoverError, match="cannot reach"):  # too old
        await discover(kiln.url, cache_max_age=timedelta(0), **_options(tmp_path))
    with pytest.raises(DiscoverError, match="cannot reach"):  # made with other limits
        await discover(kiln.url, max_nodes=10, **_options(tmp_path))


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("discover")(discover_command)
    app.add_typer(certs_app, name="certs")
    return app


async def test_the_discover_command(furnace: Server, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--cache-dir", str(tmp_path / "cache"), "--pki-dir", str(tmp_path / "pki")]

    def invoke(*args: str) -> Any:
        return runner.invoke(_app(), ["discover", *args, *common])

    # auto on a server without security: None; the client certificate is not needed
    done = await asyncio.to_thread(invoke, furnace.url, "--max-nodes", "30")
    assert done.exit_code == 0, done.output
    assert yaml.safe_load(done.stdout)
    assert done.stderr.startswith(f"{len(yaml.safe_load(done.stdout)[BLOCK])} variables of ")
    assert "warning: --max-nodes 30 cut the browse short" in done.stderr
    assert not (tmp_path / "pki").exists()  # no certificate made for a connection without one

    out = tmp_path / "skeleton.yaml"
    written = await asyncio.to_thread(invoke, furnace.url, "--refresh", "-o", str(out))
    assert written.exit_code == 0 and written.stdout == ""
    assert f"    address: {VACUUM}\n" in out.read_text(encoding="utf-8")

    refused = await asyncio.to_thread(invoke, furnace.url, "--security", "sign", "--refresh")
    assert refused.exit_code == 1
    assert refused.stderr == (f"error: {furnace.url} offers no endpoint for security 'sign' "
                              "(Basic256Sha256 Sign); it offers: None (security: none)\n")

    nobody = f"opc.tcp://127.0.0.1:{free_port()}"
    unreachable = await asyncio.to_thread(invoke, nobody)
    assert unreachable.exit_code == 1
    assert unreachable.stderr.startswith(f"error: cannot reach the OPC UA server at {nobody}: ")
    assert unreachable.stderr.count("\n") == 1


def _variable(path: str, unit: str | None = None, data_type: str = "Double",
              description: str = "") -> Variable:
    return Variable(node_id=f"nsu=urn:plc;s={path}", browse_path=tuple(path.split("/")),
                    data_type=data_type, value_rank=-1, description=description, unit=unit)


def test_suggestions_need_the_name_or_the_unit_to_make_the_signal_obvious() -> None:
    assert suggest_signal(_variable("f/Vacuum", "Pa")).signal == "vacuum_pa"
    assert suggest_signal(_variable("f/VacuumPa")).signal == "vacuum_pa"  # the name, normalised
    assert suggest_signal(_variable("a/LHV", "MJ/Nm3")).signal == "gas_lhv_mj_per_nm3"
    ambiguous = suggest_signal(_variable("f/ZoneTemperature", "degC"))
    assert ambiguous.signal is None
    assert {"zone_temp_c", "kiln_burning_zone_temp_c"} <= set(ambiguous.candidates)
    described = _variable("f/ZoneTemperature", "degC", description="Furnace zone 3")
    assert suggest_signal(described).signal == "zone_temp_c"
    wrong_unit = suggest_signal(_variable("f/vacuum_pa", "°C"))
    assert wrong_unit.signal is None
    assert "measures temperature, not pressure" in wrong_unit.reason


def test_todo_entries_duplicates_and_non_numbers_in_the_skeleton() -> None:
    variables = [
        _variable("line/furnace-9/retort-01/vacuum_pa", "kPa"),
        _variable("line/furnace-9/retort-01/Vacuum", "Pa"),    # vacuum_pa is taken
        _variable("line/furnace-9/retort-01/Spare: 1", "Pa"),  # needs quoting
        _variable("line/furnace-9/Name", data_type="String"),
        _variable("line/furnace-9/Temp", "F"),                 # a unit we do not know
    ]
    result = BrowseResult("opc.tcp://plc:4840", "urn:plc", "PLC", "Objects",
                          datetime.now(UTC) - timedelta(minutes=5), 10, 5000, nodes=7,
                          variables=variables)
    text = render_yaml(Discovery(result, True, Path("cache.json")))
    assert "(from the cache cache.json, 5 min old; --refresh browses again)" in text
    assert "# 7 nodes, 5 variables: 1 with a suggested signal, 3 marked TODO, 1 left out\n" in text
    skeleton = yaml.safe_load(text)
    bindings = skeleton["line/furnace-9"]
    assert bindings["retort-01/vacuum_pa"] == {"address": "nsu=urn:plc;s=line/furnace-9/"
                                               "retort-01/vacuum_pa", "unit": "kPa"}
    assert bindings["retort-01/Vacuum"]["unit"] == "Pa"
    assert "    # signal: vacuum_pa? check it (unit Pa, words vacuum)" not in text
    assert "    # TODO: signal? vacuum_pa is already bound to line/furnace-9/retort-01/vacuum_pa" \
        in text
    assert bindings["retort-01/Spare: 1"]["address"] == "nsu=urn:plc;s=line/furnace-9/retort-01/" \
        "Spare: 1"
    assert bindings["Temp"] == {"address": "nsu=urn:plc;s=line/furnace-9/Temp"}
    assert "    # unit: the server says 'F', not a unit smeltwatch knows" in text
    assert "  # left out, line/furnace-9/Name nsu=urn:plc;s=line/furnace-9/Name (not a number: " \
        "String)" in text
