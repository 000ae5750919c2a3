"""`smeltwatch db …`: migrate, status, refresh-rollups."""

from __future__ import annotations

import asyncio
import time

import typer

from collector.store.database import StoreUnavailable, describe_target
from collector.store.migrate import MigrationError, migrate, status
from collector.store.rollups import refresh_rollups
from collector.store.settings import StoreSettings

app = typer.Typer(help="The TimescaleDB store: schema migrations and rollups.",
                  no_args_is_help=True)

DatabaseUrl = typer.Option(None, "--database-url", envvar="SMELTWATCH_DATABASE_URL",
                           help="postgresql:// URL of the smeltwatch database")


def _url(database_url: str | None) -> str:
    return database_url or StoreSettings().database_url


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command("migrate")
def migrate_command(database_url: str | None = DatabaseUrl) -> None:
    """Apply every pending schema migration (safe to run again: then it does nothing)."""
    url = _url(database_url)
    try:
        applied = asyncio.run(migrate(url))
        current = asyncio.run(status(url))
    except (StoreUnavailable, MigrationError) as exc:
        raise _fail(exc) from None
    for m in applied:
        typer.echo(f"applied {m.version:04d}_{m.name} ({m.variant})")
    if not applied:
        typer.echo(f"{describe_target(url)}: schema up to date, nothing to apply")
    typer.echo(f"TimescaleDB {current.extension_version}, licence {current.license}: "
               f"rollups are {current.rollups}")


@app.command("status")
def status_command(database_url: str | None = DatabaseUrl) -> None:
    """Show the TimescaleDB edition, applied and pending migrations."""
    url = _url(database_url)
    try:
        current = asyncio.run(status(url))
    except (StoreUnavailable, MigrationError) as exc:
        raise _fail(exc) from None
    typer.echo(f"database:    {describe_target(url)}")
    typer.echo(f"timescaledb: {current.extension_version} (licence {current.license}; "
               f"rollups are {current.rollups})")
    for version, name, variant in current.applied:
        typer.echo(f"  applied  {version:04d}_{name} ({variant})")
    for m in current.pending:
        typer.echo(f"  pending  {m.version:04d}_{m.name} ({m.variant})")
    if current.pending:
        typer.echo("run 'smeltwatch db migrate' to apply the pending migrations")
        raise typer.Exit(3)


@app.command("refresh-rollups")
def refresh_command(
    database_url: str | None = DatabaseUrl,
    every: float = typer.Option(0.0, help="repeat every N seconds (0: once)"),
) -> None:
    """Recompute the 1-minute and 1-hour rollups for the hours new data has touched."""
    url = _url(database_url)
    while True:
        try:
            result = asyncio.run(refresh_rollups(url))
        except StoreUnavailable as exc:
            if not every:
                raise _fail(exc) from None
            typer.echo(f"warning: {exc}", err=True)
        else:
            typer.echo(f"refreshed {result.hours} hour(s) in {len(result.ranges)} range(s)")
        if not every:
            return
        time.sleep(every)
