"""`smeltwatch serve|report|demo`."""

from __future__ import annotations

import asyncio

import typer

from collector.contracts import PlantConfigError, load_plant
from collector.store import MigrationError, StoreSettings, StoreUnavailable, migrate, status


def serve() -> None:
    """Serve the HTTP API (not yet implemented)."""
    typer.echo("smeltwatch serve: not yet implemented (issue #6)", err=True)
    raise typer.Exit(2)


def report() -> None:
    """Render the monthly energy report (not yet implemented)."""
    typer.echo("smeltwatch report: not yet implemented (issue #6)", err=True)
    raise typer.Exit(2)


def demo(
    plant: str = typer.Option("plants/demo.yaml", help="plant model YAML"),
    scenario: str = typer.Option("normal-month", help="simulator scenario (sim list)"),
    speed: float = typer.Option(60.0, help="simulated seconds per wall second"),
    seconds: float | None = typer.Option(None, "--for", help="stop after this many seconds"),
) -> None:
    """Bring the whole stack up on this machine: the database, the simulated plant and the
    collector (rules, API and dashboards join as their issues land), until Ctrl-C."""
    url = StoreSettings().database_url
    try:
        model = load_plant(plant)
        asyncio.run(migrate(url))
        current = asyncio.run(status(url))
    except (PlantConfigError, StoreUnavailable, MigrationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"TimescaleDB {current.extension_version} ({current.license} edition) "
               f"migrated: {len(current.applied)} migrations, rollups are {current.rollups}")
    typer.echo(f"plant {model.site.id}: {len(model.assets())} assets, "
               f"{len(model.bindings())} bindings, capacity ≈ "
               f"{model.capacity_t_per_year():,.0f} t Mg/a")
    from service.demo import run_demo

    run_demo(model, plant, url, scenario, speed, seconds)
