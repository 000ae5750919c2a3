"""`smeltwatch rules …` (issue #5)."""

from __future__ import annotations

import typer

app = typer.Typer(help="KPIs, norm verdicts and alerts.", no_args_is_help=True)


@app.command("run")
def run() -> None:
    """Evaluate KPIs and alert rules continuously (not yet implemented)."""
    typer.echo("smeltwatch rules run: not yet implemented (issue #5)", err=True)
    raise typer.Exit(2)
