"""The `smeltwatch` command.

Each package adds its own commands through the `smeltwatch.commands` entry-point group
(pyproject.toml), so this root never imports the layers above the collector: a Typer app
becomes a command group, a function becomes a single command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import typer

app = typer.Typer(
    name="smeltwatch",
    help="Energy management for Pidgeon-process magnesium smelters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging"),
    json_logs: bool = typer.Option(False, "--json-logs", envvar="SMELTWATCH_JSON_LOGS",
                                   help="one JSON object per log line"),
) -> None:
    from collector.logs import configure_logging

    configure_logging(logging.DEBUG if verbose else logging.INFO, json_logs)


def _broken(name: str, error: Exception) -> Callable[..., Any]:
    def command() -> None:
        typer.echo(f"error: the '{name}' command failed to load: {error}", err=True)
        raise typer.Exit(1)

    command.__doc__ = f"(unavailable: {error})"
    return command


def _register_commands() -> None:
    for entry in sorted(entry_points(group="smeltwatch.commands"), key=lambda e: e.name):
        try:
            target = entry.load()
        except Exception as exc:  # a broken plug-in must not take the whole CLI down
            app.command(entry.name)(_broken(entry.name, exc))
            continue
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=entry.name)
        else:
            app.command(entry.name)(target)


_register_commands()


def main() -> None:
    app()
