"""`smeltwatch sim|record|replay`: the simulated plant and its recordings (issue #3)."""

from __future__ import annotations

import typer

sim_app = typer.Typer(help="Run the simulated plant (OPC UA servers, MQTT publishers).",
                      no_args_is_help=True)


def _not_yet(command: str) -> typer.Exit:
    typer.echo(f"smeltwatch {command}: not yet implemented (issue #3)", err=True)
    return typer.Exit(2)


@sim_app.command("run")
def run(scenario: str = typer.Argument("normal-month")) -> None:
    """Run a scenario of the simulated plant (not yet implemented)."""
    raise _not_yet(f"sim run {scenario}")


@sim_app.command("list")
def list_scenarios() -> None:
    """List the scenarios (not yet implemented)."""
    raise _not_yet("sim list")


def record() -> None:
    """Record MQTT messages and OPC UA DataValues to a file (not yet implemented)."""
    raise _not_yet("record")


def replay() -> None:
    """Replay a recording into MQTT and/or an OPC UA server (not yet implemented)."""
    raise _not_yet("replay")
