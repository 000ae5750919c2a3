"""`smeltwatch collect`: run every source of a plant into the store (issue #4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def collect(
    plant: Annotated[Path, typer.Option(help="plant model YAML")] = Path("plants/demo.yaml"),
) -> None:
    """Collect OPC UA and MQTT data of a plant into TimescaleDB (not yet implemented)."""
    typer.echo(f"smeltwatch collect --plant {plant}: not yet implemented (issue #4)", err=True)
    raise typer.Exit(2)
