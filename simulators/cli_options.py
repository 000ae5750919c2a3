"""Command-line options the simulator, recorder and player share: how to reach a broker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from collector.security.mqtt import MqttConnection

MqttUsername = Annotated[str | None, typer.Option(
    "--mqtt-username", envvar="SMELTWATCH_MQTT_USERNAME", help="MQTT user name")]
MqttPassword = Annotated[str | None, typer.Option(
    "--mqtt-password", envvar="SMELTWATCH_MQTT_PASSWORD",
    help="MQTT password (prefer the environment variable: a command line is visible to all)")]
MqttCaFile = Annotated[Path | None, typer.Option(
    "--mqtt-ca-file", help="CA certificate (PEM) that signed the broker's, for mqtts:// URLs")]


def mqtt_connection(url: str, username: str | None, password: str | None,
                    ca_file: Path | None) -> MqttConnection:
    try:
        return MqttConnection(url, username=username, password=password, ca_file=ca_file)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """`OLD=NEW` options into a mapping."""
    out = {}
    for value in values or []:
        old, sep, new = value.partition("=")
        if not sep or not old:
            raise typer.BadParameter(f"{option} takes OLD=NEW, not {value!r}")
        out[old] = new
    return out
