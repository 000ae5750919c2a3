"""`smeltwatch collect`: run every source of a plant into the store; `collect discover` and
`collect certs` for OPC UA servers."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from collector.contracts import PlantConfigError, load_plant
from collector.contracts.plant import MqttSource, OpcUaSource

log = logging.getLogger(__name__)
collect_app = typer.Typer(help="Collect OPC UA and MQTT data of a plant into TimescaleDB.",
                          invoke_without_command=True)


@collect_app.callback()
def collect(
    ctx: typer.Context,
    plant: Annotated[Path, typer.Option(help="plant model YAML")] = Path("plants/demo.yaml"),
    only: Annotated[list[str] | None, typer.Option(
        help="collect only this source (repeat); several collectors can split a plant")] = None,
    opcua_base_port: Annotated[int | None, typer.Option(
        help="the plant's OPC UA servers are on consecutive ports from this one (as "
             "`sim run --opcua-base-port`)")] = None,
    mqtt_url: Annotated[str | None, typer.Option(
        help="broker URL instead of the plant model's")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="port of /metrics and /health (default 9464; SMELTWATCH_COLLECTOR_METRICS_PORT)")
    ] = None,
    spool_dir: Annotated[Path | None, typer.Option(
        help="where batches wait while the database is away (SMELTWATCH_SPOOL_DIR)")] = None,
) -> None:
    """Collect every source of the plant until Ctrl-C (SIGINT/SIGTERM flush and stop cleanly).

    Settings from the environment: SMELTWATCH_DATABASE_URL, SMELTWATCH_SPOOL_HOURS,
    SMELTWATCH_OPCUA_USERNAME / _PASSWORD, SMELTWATCH_MQTT_USERNAME / _PASSWORD / _CA_FILE /
    _CLIENT_ID / _SHARE_GROUP, and more (collector/README.md)."""
    if ctx.invoked_subcommand is not None:
        return
    from collector.collect import CollectOptions, CollectorApp

    try:
        model = load_plant(plant)
    except PlantConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    options = CollectOptions(only=set(only) if only else None)
    if metrics_port is not None:
        options.telemetry.metrics_port = metrics_port
    if spool_dir is not None:
        options.pipeline.spool_dir = spool_dir
    servers = [s for s in model.sources if isinstance(s, OpcUaSource)]
    if opcua_base_port is not None:
        for i, s in enumerate(servers):
            options.endpoints[s.id] = f"{s.endpoint.rsplit(':', 1)[0]}:{opcua_base_port + i}"
    if mqtt_url is not None:
        for broker in model.sources:
            if isinstance(broker, MqttSource):
                options.endpoints[broker.id] = mqtt_url
    try:
        app = CollectorApp(model, options)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

    # asyncua makes ~10 tracked objects per notification: with the default threshold (700)
    # a collection ran every ~70 values and full ones scanned the whole queue — 31 % of the
    # time at 20k values/s (bench/README.md, OPC UA ingest)
    gc.set_threshold(50_000, 10, 10)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await app.run_until(stop)

    try:
        asyncio.run(main())
    except OSError as exc:  # e.g. the metrics port is taken, the spool is not writable
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _mount_opcua_tools() -> None:
    from collector.sources.opcua.cli import certs_app, discover_command

    collect_app.command("discover")(discover_command)
    collect_app.add_typer(certs_app, name="certs")


_mount_opcua_tools()
