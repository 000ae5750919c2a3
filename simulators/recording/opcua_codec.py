"""OPC UA values and variables in a recording: DataValues in the OPC UA binary encoding, and
the variable metadata that lets a replay serve the same address space."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from simulators.opcua.device import EngineeringUnit, VariableSpec


def encode(value: ua.DataValue) -> bytes:
    return bytes(struct_to_binary(value))


def decode(data: bytes) -> ua.DataValue:
    return struct_from_binary(ua.DataValue, Buffer(data))


def shifted(value: ua.DataValue, delta: timedelta) -> ua.DataValue:
    return dataclasses.replace(
        value,
        SourceTimestamp=None if value.SourceTimestamp is None else value.SourceTimestamp + delta,
        ServerTimestamp=None if value.ServerTimestamp is None else value.ServerTimestamp + delta)


def without_server_time(data: bytes) -> bytes:
    """What the device measured, not when its server handled it (for digests)."""
    value = decode(data)
    return encode(dataclasses.replace(value, ServerTimestamp=None, ServerPicoseconds=None))


def channel_name(namespace: str, identifier: str) -> str:
    """`nsu=<namespace URI>;<identifier>`: the namespace by URI, as Part 6 allows."""
    return f"nsu={namespace};{identifier}"


def spec_to_json(spec: VariableSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def spec_from_json(data: dict[str, Any]) -> VariableSpec:
    unit = data.get("unit")
    eu_range = data.get("eu_range")
    return VariableSpec(
        namespace=data["namespace"], identifier=data["identifier"],
        browse_path=tuple(data["browse_path"]), description=data.get("description", ""),
        unit=EngineeringUnit(**unit) if unit else None,
        eu_range=(float(eu_range[0]), float(eu_range[1])) if eu_range else None,
        variant_type=data.get("variant_type", "Double"),
        historizing=bool(data.get("historizing", True)))
