"""`smeltwatch sim list|run`: the simulated plant."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from collector.contracts import CATALOGUE, PlantConfigError
from collector.contracts.plant import MqttSource, OpcUaSource
from simulators.cli_options import MqttCaFile, MqttPassword, MqttUsername, mqtt_connection
from simulators.mqtt_publisher import MqttChaos, PublishError
from simulators.opcua import OpcUaChaos, OpcUaSecurity, QualityCycle
from simulators.opcua.security import DEFAULT_CERT_DIR
from simulators.runner import RunOptions, run_scenario
from simulators.scenario import ScenarioError, list_scenarios, load_scenario

log = logging.getLogger(__name__)
sim_app = typer.Typer(help="Run the simulated plant (OPC UA servers, MQTT publishers).",
                      no_args_is_help=True)


@sim_app.command("list")
def list_command() -> None:
    """List the scenarios with their description."""
    for name in list_scenarios():
        scenario = load_scenario(name)
        typer.echo(f"{name:28s} {scenario.duration}  {' '.join(scenario.description.split())}")


@sim_app.command("run")
def run_command(
    scenario_name: Annotated[str, typer.Argument(help="scenario name or folder")] = "normal-month",
    speed: Annotated[float | None, typer.Option(
        help="simulated seconds per wall second (0: as fast as possible)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (default: the scenario's)")] = None,
    duration: Annotated[float | None, typer.Option(help="hours to simulate")] = None,
    mqtt_url: Annotated[str | None, typer.Option(help="broker URL instead of the plant's")] = None,
    only: Annotated[list[str] | None, typer.Option(help="serve only this source (repeat)")] = None,
    opcua_base_port: Annotated[int | None, typer.Option(
        help="serve the OPC UA PLCs on consecutive ports from this one")] = None,
    single: Annotated[bool, typer.Option(help="one MQTT message per value, not batches")] = False,
    one_process: Annotated[bool, typer.Option(
        help="serve every source from this process (default: one process per PLC)")] = False,
    describe: Annotated[bool, typer.Option(
        help="print the address space and topics, then exit")] = False,
    start_delay: Annotated[float, typer.Option(
        help="wall seconds between the servers coming up and the first frame, for "
             "collectors and recorders to connect")] = 0.0,
    linger: Annotated[float, typer.Option(
        help="wall seconds the servers stay up after the last frame, for clients to read "
             "the last values")] = 2.0,
    opcua_security: Annotated[list[str] | None, typer.Option(
        help="OPC UA security the PLCs offer: none, sign, sign_encrypt (Basic256Sha256; "
             "repeat to offer several)")] = None,
    opcua_user: Annotated[list[str] | None, typer.Option(
        help="NAME:PASSWORD a PLC accepts (repeat); anonymous access ends when given",
        envvar="SMELTWATCH_SIM_OPCUA_USERS")] = None,
    opcua_cert_dir: Annotated[Path, typer.Option(
        help="where the PLCs keep their certificates")] = DEFAULT_CERT_DIR,
    opcua_trusted_clients: Annotated[Path | None, typer.Option(
        help="folder of client certificates the PLCs trust (others are refused)")] = None,
    mqtt_username: MqttUsername = None,
    mqtt_password: MqttPassword = None,
    mqtt_ca_file: MqttCaFile = None,
    chaos_duplicate_pct: Annotated[float, typer.Option(
        help="MQTT: publish this % of messages twice")] = 0.0,
    chaos_reorder_pct: Annotated[float, typer.Option(
        help="MQTT: swap this % of messages with the next")] = 0.0,
    chaos_drop_mqtt_every: Annotated[int, typer.Option(
        help="MQTT: cut the connection after every N messages")] = 0,
    chaos_drop_opcua_s: Annotated[float, typer.Option(
        help="OPC UA: cut every client connection every S wall seconds")] = 0.0,
    chaos_cycle_quality_pct: Annotated[float, typer.Option(
        help="OPC UA: this % of nodes cycle Good → Uncertain → Bad")] = 0.0,
    chaos_cycle_quality_s: Annotated[float, typer.Option(
        help="simulated seconds each quality of the cycle lasts")] = 600.0,
) -> None:
    """Run a scenario: the plant's OPC UA servers and MQTT publishers on a virtual clock."""
    try:
        scenario = load_scenario(scenario_name)
        plant = scenario.load_plant()
    except (ScenarioError, PlantConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    updates: dict[str, object] = {}
    if seed is not None:
        updates["seed"] = seed
    if duration is not None:
        updates["duration"] = timedelta(hours=duration)
    scenario = scenario.model_copy(update=updates)
    ports = {}
    if opcua_base_port is not None:
        opcua = [s.id for s in plant.sources if isinstance(s, OpcUaSource)]
        ports = {sid: opcua_base_port + i for i, sid in enumerate(opcua)}
    if describe:
        _describe(scenario_name, ports, mqtt_url)
        return
    sources = [s.id for s in plant.sources if only is None or s.id in only]
    if not one_process and len(sources) > 1:
        raise typer.Exit(_run_split(sources))
    try:
        security = OpcUaSecurity(policies=tuple(opcua_security or ("none",)),
                                 cert_dir=opcua_cert_dir, users=_users(opcua_user),
                                 trusted_clients=opcua_trusted_clients)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    mqtt_connection(mqtt_url or "mqtt://127.0.0.1", mqtt_username, mqtt_password,
                    mqtt_ca_file)  # validate the combination before any process starts
    options = RunOptions(
        speed=speed, only=set(sources), mqtt_url=mqtt_url, mqtt_username=mqtt_username,
        mqtt_password=mqtt_password, mqtt_ca_file=mqtt_ca_file, opcua_ports=ports,
        batched=not single, security=security, start_delay_s=start_delay, linger_s=linger,
        chaos=MqttChaos(chaos_duplicate_pct, chaos_reorder_pct, scenario.seed,
                        drop_connection_every=chaos_drop_mqtt_every),
        opcua_chaos=OpcUaChaos(drop_connections_s=chaos_drop_opcua_s),
        quality_cycle=QualityCycle(chaos_cycle_quality_pct, chaos_cycle_quality_s,
                                   scenario.seed))
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        stats = await run_scenario(plant, scenario, options, stop)
        log.info("scenario %s (%s) done: %d frames, %d OPC UA writes, %d MQTT messages "
                 "in %.1f s", scenario.name, ", ".join(sources), stats.frames,
                 stats.opcua_writes, stats.mqtt_messages, stats.wall_s)

    try:
        asyncio.run(main())
    except (PublishError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _run_split(sources: list[str]) -> int:
    """Re-run this command once per source, each in its own process, as real PLCs are."""
    args = sys.argv[1:]
    children = [subprocess.Popen([sys.argv[0], *args, "--one-process", "--only", source],
                                 preexec_fn=_die_with_parent)
                for source in sources]
    try:
        codes = [child.wait() for child in children]
    except KeyboardInterrupt:
        for child in children:
            child.send_signal(signal.SIGINT)
        codes = [child.wait() for child in children]
    return max(codes, default=0)


def _die_with_parent() -> None:
    """Linux: a PLC process ends when its parent does, even if the parent is killed."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _describe(name: str, ports: dict[str, int], mqtt_url: str | None) -> None:
    scenario = load_scenario(name)
    plant = scenario.load_plant()
    bindings = plant.bindings()
    typer.echo(f"scenario {scenario.name}: {scenario.duration} from {scenario.start.isoformat()}"
               f", sampling {scenario.sampling}, speed {scenario.speed:g}x, seed {scenario.seed}")
    for source in plant.sources:
        mine = [b for b in bindings if b.source == source.id]
        if isinstance(source, OpcUaSource):
            endpoint = source.endpoint
            if source.id in ports:
                endpoint = endpoint.rsplit(":", 1)[0] + f":{ports[source.id]}"
            typer.echo(f"\nOPC UA {source.id}: {endpoint} (namespace {source.namespace}), "
                       f"{len(mine)} variables")
            for b in mine:
                typer.echo(f"  ns={source.namespace};s={b.address}  "
                           f"[{CATALOGUE[b.signal].unit}]")
        elif isinstance(source, MqttSource):
            site = plant.site.id
            typer.echo(f"\nMQTT {source.id}: {mqtt_url or source.url}, {len(mine)} topics, "
                       f"batches on smelter/v1/{site}/_batch/{source.id}, events on "
                       f"smelter/v1/{site}/_events/<kind>")
            for b in mine:
                typer.echo(f"  {b.address}  [{CATALOGUE[b.signal].unit}]")


def _users(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    users = []
    for value in values or []:
        for item in value.split(","):  # the environment variable may list several
            name, sep, password = item.partition(":")
            if not sep or not name:
                raise typer.BadParameter(f"--opcua-user takes NAME:PASSWORD, not {item!r}")
            users.append((name, password))
    return tuple(users)
