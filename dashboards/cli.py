"""`smeltwatch dashboards build|publish` (issue #7)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Grafana dashboards as code.", no_args_is_help=True)


def _not_yet(command: str) -> typer.Exit:
    typer.echo(f"smeltwatch dashboards {command}: not yet implemented (issue #7)", err=True)
    return typer.Exit(2)


@app.command("build")
def build() -> None:
    """Build the dashboard JSON from its Python source (not yet implemented)."""
    raise _not_yet("build")


@app.command("publish")
def publish() -> None:
    """Push the dashboards to Grafana over its HTTP API (not yet implemented)."""
    raise _not_yet("publish")
