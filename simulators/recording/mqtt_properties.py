"""MQTT 5 PUBLISH properties in a recording, as JSON: the publisher's properties only (the
receiving side's, like SubscriptionIdentifier or TopicAlias, are not part of the message);
binary CorrelationData as {"hex": …}; UserProperty as a list of [name, value] pairs."""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

KEPT = ("PayloadFormatIndicator", "MessageExpiryInterval", "ContentType", "ResponseTopic",
        "CorrelationData", "UserProperty")


def to_json(properties: Properties | None) -> dict[str, Any] | None:
    if properties is None:
        return None
    out: dict[str, Any] = {}
    for name in KEPT:
        if hasattr(properties, name):
            value = getattr(properties, name)
            if isinstance(value, bytes | bytearray):
                value = {"hex": bytes(value).hex()}
            elif name == "UserProperty":
                value = [list(pair) for pair in value]
            out[name] = value
    return out or None


def from_json(data: dict[str, Any] | None) -> Properties | None:
    if not data:
        return None
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in data.items():
        if name not in KEPT:
            continue
        if isinstance(value, dict):
            value = bytes.fromhex(value["hex"])
        elif name == "UserProperty":
            value = [tuple(pair) for pair in value]
        setattr(properties, name, value)
    return properties
