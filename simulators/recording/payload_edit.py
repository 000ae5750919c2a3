"""What a replay may change in an MQTT payload: its timestamps (now-shifted replays) and the
topics a batch names inside it (topic remapping). Only JSON payloads are touched; any other
payload is replayed byte for byte.

Timestamps: every string value that is an ISO 8601 date-time with a zone (`…Z`, `…+08:00`),
and every integer under a `timestamp` key that is milliseconds since the epoch (Sparkplug B
JSON), wherever it sits in the document. Topics: every string under a `topic` key (the
documented batch format). An edited payload is re-serialised as compact UTF-8 JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
_MS_EPOCH_MIN = 10**12  # 2001-09-09: smaller integers are not millisecond timestamps


def _load(payload: bytes) -> Any:
    if payload[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None


def _dump(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _walk(node: Any, edit: Callable[[str | None, Any], Any], key: str | None = None) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, edit, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, edit, key) for v in node]
    return edit(key, node)


def _shift_iso(text: str, delta: timedelta) -> str | None:
    match = _ISO.match(text)
    if match is None:
        return None
    fraction, zone = match.groups()
    try:
        when = datetime.fromisoformat(text) + delta
    except ValueError:
        return None
    spec = "seconds" if not fraction else "milliseconds" if len(fraction) <= 3 \
        else "microseconds"
    out = when.isoformat(timespec=spec)
    return out.replace("+00:00", "Z") if zone == "Z" else out


def first_time(payload: bytes) -> datetime | None:
    """The first timestamp in a JSON payload (to anchor a now-shifted replay)."""
    found: list[datetime] = []

    def look(key: str | None, value: Any) -> Any:
        if not found and isinstance(value, str) and _ISO.match(value):
            found.append(datetime.fromisoformat(value))
        return value

    document = _load(payload)
    if document is not None:
        _walk(document, look)
    return found[0] if found else None


def shift_times(payload: bytes, delta: timedelta) -> bytes:
    document = _load(payload)
    if document is None:
        return payload
    changed = False

    def shift(key: str | None, value: Any) -> Any:
        nonlocal changed
        if isinstance(value, str) and (moved := _shift_iso(value, delta)) is not None:
            changed = True
            return moved
        if key == "timestamp" and isinstance(value, int) and not isinstance(value, bool) \
                and value >= _MS_EPOCH_MIN:
            changed = True
            return value + round(delta.total_seconds() * 1000)
        return value

    shifted = _walk(document, shift)
    return _dump(shifted) if changed else payload


def remap_topic(topic: str, remaps: tuple[tuple[str, str], ...]) -> str:
    for old, new in remaps:
        if topic.startswith(old):
            return new + topic[len(old):]
    return topic


def remap_inner_topics(payload: bytes, remaps: tuple[tuple[str, str], ...]) -> bytes:
    document = _load(payload)
    if document is None or not remaps:
        return payload
    changed = False

    def remap(key: str | None, value: Any) -> Any:
        nonlocal changed
        if key == "topic" and isinstance(value, str):
            moved = remap_topic(value, remaps)
            changed = changed or moved != value
            return moved
        return value

    remapped = _walk(document, remap)
    return _dump(remapped) if changed else payload


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching (`+` one level, `#` the rest), MQTT 5 section 4.7."""
    levels, parts = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(levels) == len(parts)
