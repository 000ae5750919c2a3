"""Material events into the `events` hypertable, idempotent by key and version.

An event is identified by its sender's key; `version` counts its corrections (1 first).
- a key and version already stored with the same content: a duplicate (a retry), ignored;
- the same key and version with other content: never overwritten — a dead letter tells the
  sender to send a correction with a higher version;
- a higher version than stored: a correction — stored, the older versions marked superseded,
  `event_keys.current_version` moved on (KPIs restate the periods it touches, issue #5);
- a lower version than current, not stored yet (it arrived late): stored as superseded.
Low volume (tens an hour), so one statement per event inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg import AsyncConnection

from collector.contracts import DeadLetter, MaterialEvent

_COLUMNS = ("time", "kind", "asset", "quantity", "unit", "destination", "ticket")


@dataclass
class EventResult:
    inserted: int = 0
    corrections: int = 0
    duplicates: int = 0
    rejected: list[DeadLetter] = field(default_factory=list)


def _content(e: MaterialEvent) -> tuple[object, ...]:
    return (e.time, e.kind.value, e.asset, e.quantity, e.unit,
            e.destination.value if e.destination else None, e.ticket)


async def write_events(conn: AsyncConnection, events: Sequence[MaterialEvent]) -> EventResult:
    result = EventResult()
    async with conn.cursor() as cur:
        for e in events:
            # the key row exists (version 0: nothing stored yet) and is locked before anything
            # is read, so two collectors storing the same event serialise instead of clashing
            await cur.execute("insert into event_keys (event_key, current_version) "
                              "values (%s, 0) on conflict do nothing", (e.key,))
            await cur.execute("select current_version from event_keys where event_key = %s "
                              "for update", (e.key,))
            row = await cur.fetchone()
            current = int(row[0]) if row is not None and row[0] else None
            if current is not None:
                await cur.execute(
                    f"select {', '.join(_COLUMNS)} from events "  # noqa: S608 (fixed columns)
                    "where event_key = %s and version = %s", (e.key, e.version))
                stored = await cur.fetchone()
                if stored is not None:
                    if tuple(stored) == _content(e):
                        result.duplicates += 1
                    else:
                        result.rejected.append(_conflict(e, stored))
                    continue
            superseded = current is not None and e.version < current
            await cur.execute(
                "insert into events (time, event_key, version, kind, asset, quantity, unit, "
                "destination, ticket, origin, superseded) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (e.time, e.key, e.version, e.kind.value, e.asset, e.quantity, e.unit,
                 e.destination.value if e.destination else None, e.ticket, e.origin,
                 superseded))
            if current is None:
                await cur.execute("update event_keys set current_version = %s "
                                  "where event_key = %s", (e.version, e.key))
            elif e.version > current:
                await cur.execute("update events set superseded = true "
                                  "where event_key = %s and version < %s", (e.key, e.version))
                await cur.execute("update event_keys set current_version = %s "
                                  "where event_key = %s", (e.version, e.key))
                result.corrections += 1
            result.inserted += 1
    return result


def _conflict(e: MaterialEvent, stored: tuple[object, ...]) -> DeadLetter:
    differs = [name for name, a, b in zip(_COLUMNS, stored, _content(e), strict=True) if a != b]
    return DeadLetter(
        origin=e.origin or "events",
        reason=(f"event {e.key!r} version {e.version} is already stored with another "
                f"{', '.join(differs)}; a correction needs a higher version"),
        payload=e.model_dump_json().encode(),
        detail={"key": e.key, "version": e.version, "differs": differs})
