"""The store writer: the sink that makes Readings durable in TimescaleDB.

Per batch, in one transaction:
  1. readings that cannot be stored (unknown signal, naive time, NaN or out-of-range value
     with Good status) become dead_letters rows with the reason;
  2. the rest go by binary COPY into a temporary staging table, then
     `INSERT … SELECT … ON CONFLICT DO NOTHING` into the samples hypertable;
  3. only if some rows were already there, a *different* value at an existing (tag, time) is
     recorded in sample_conflicts (the stored value stays);
  4. the hours the batch touched are marked for the rollup refresh.
The same batch written twice leaves the same rows: writes are idempotent.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from collector.contracts import Quality, Reading
from collector.store.database import make_pool, pooled, unavailable
from collector.store.settings import StoreSettings
from collector.store.tags import TagRegistry

log = logging.getLogger(__name__)

STAGE_DDL = """
create temp table if not exists samples_stage (
    time timestamptz, tag_id integer, value double precision, quality smallint,
    status_code bigint, server_time timestamptz
) on commit delete rows"""
STAGE_COPY = ("copy samples_stage (time, tag_id, value, quality, status_code, server_time) "
              "from stdin (format binary)")
STAGE_TYPES = ["timestamptz", "int4", "float8", "int2", "int8", "timestamptz"]
INSERT_FROM_STAGE = """
insert into samples (time, tag_id, value, quality, status_code, server_time)
select time, tag_id, value, quality, status_code, server_time from samples_stage
on conflict (tag_id, time) do nothing"""
# After the insert every staged key exists in samples; those whose stored value differs
# from the one offered are conflicts. (Rows just inserted are equal and drop out.)
RECORD_CONFLICTS = """
insert into sample_conflicts (time, tag_id, stored_value, stored_quality, offered_value,
                              offered_quality, offered_status, origin)
select s.time, s.tag_id, x.value, x.quality, s.value, s.quality, s.status_code, %s
from samples_stage s join samples x on x.tag_id = s.tag_id and x.time = s.time
where x.value is distinct from s.value or x.quality <> s.quality"""
MARK_DIRTY = """
insert into rollup_dirty (hour)
select distinct date_trunc('hour', time) from samples_stage
on conflict do nothing"""

Row = tuple[datetime, int, float | None, int, int, datetime | None]


@dataclass
class WriteResult:
    inserted: int = 0
    duplicates: int = 0      # already stored with the same value: nothing to do
    conflicts: int = 0       # already stored with another value: kept aside
    dead_lettered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Rejected:
    reading: Reading
    reason: str


class StoreWriter:
    """A Sink: `await writer.put(readings)` returns once the batch is durable (or raises
    StoreUnavailable, and nothing of the batch was written)."""

    def __init__(self, settings: StoreSettings | None = None) -> None:
        self._settings = settings or StoreSettings()
        self._pool: AsyncConnectionPool = make_pool(self._settings, configure=_create_stage)
        self._tags = TagRegistry()

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=self._settings.connect_timeout_s)
        except Exception as exc:
            raise unavailable(self._settings.database_url, exc) from exc

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> StoreWriter:
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def put(self, readings: Sequence[Reading]) -> WriteResult:
        if not readings:
            return WriteResult()
        url = self._settings.database_url
        try:
            async with pooled(self._pool, url) as conn, conn.transaction():
                return await self._write(conn, readings)
        except psycopg.OperationalError as exc:
            raise unavailable(url, exc) from exc

    async def _write(self, conn: AsyncConnection, readings: Sequence[Reading]) -> WriteResult:
        rejected_keys = await self._tags.register(
            conn, {(r.asset, r.signal) for r in readings
                   if self._tags.get(r.asset, r.signal) is None})
        rows, rejected, in_batch_conflicts, duplicates = self._rows(readings, rejected_keys)
        result = WriteResult(duplicates=duplicates)
        if rows:
            async with conn.cursor() as cur:
                async with cur.copy(STAGE_COPY) as copy:
                    copy.set_types(STAGE_TYPES)
                    for row in rows:
                        await copy.write_row(row)
                await cur.execute(INSERT_FROM_STAGE)
                result.inserted = cur.rowcount
                if result.inserted < len(rows):
                    await cur.execute(RECORD_CONFLICTS, (_origin(readings),))
                    result.conflicts = cur.rowcount
                    result.duplicates += len(rows) - result.inserted - result.conflicts
                await cur.execute(MARK_DIRTY)
        if in_batch_conflicts:
            await self._record_in_batch_conflicts(conn, in_batch_conflicts)
            result.conflicts += len(in_batch_conflicts)
        if rejected:
            await write_dead_letters(conn, rejected)
            result.dead_lettered = len(rejected)
            for item in rejected:
                result.reasons[item.reason] = result.reasons.get(item.reason, 0) + 1
        return result

    def _rows(self, readings: Sequence[Reading], rejected_keys: dict[tuple[str, str], str]
              ) -> tuple[list[Row], list[_Rejected], list[tuple[Row, Row, str]], int]:
        """Hot path: one pass, no allocation beyond the row tuples."""
        chosen: dict[tuple[int, datetime], Row] = {}
        rejected: list[_Rejected] = []
        conflicts: list[tuple[Row, Row, str]] = []
        duplicates = 0
        good = Quality.GOOD
        for r in readings:
            tag = self._tags.get(r.asset, r.signal)
            if tag is None:
                rejected.append(_Rejected(r, rejected_keys.get(
                    (r.asset, r.signal), "tag could not be registered")))
                continue
            t = r.time
            if t.tzinfo is None:
                rejected.append(_Rejected(r, "naive source timestamp (no time zone)"))
                continue
            v = r.value
            if v is not None and not (tag.low <= v <= tag.high):
                if r.quality == good or math.isfinite(v):
                    rejected.append(_Rejected(r, _range_reason(v, tag.low, tag.high)))
                    continue
                v = None  # NaN/inf under a Bad or Uncertain status: keep the status only
            elif v is None and r.quality == good:
                rejected.append(_Rejected(r, "Good status without a value"))
                continue
            row: Row = (t, tag.tag_id, v, int(r.quality), r.status_code, r.server_time)
            key = (tag.tag_id, t)
            first = chosen.get(key)
            if first is None:
                chosen[key] = row
            elif first[2] == row[2] and first[3] == row[3]:
                duplicates += 1
            else:
                conflicts.append((first, row, r.origin))
        return list(chosen.values()), rejected, conflicts, duplicates

    @staticmethod
    async def _record_in_batch_conflicts(conn: AsyncConnection,
                                         conflicts: list[tuple[Row, Row, str]]) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                "insert into sample_conflicts (time, tag_id, stored_value, stored_quality, "
                "offered_value, offered_quality, offered_status, origin) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(new[0], new[1], first[2], first[3], new[2], new[3], new[4], origin)
                 for first, new, origin in conflicts])


async def _create_stage(conn: AsyncConnection) -> None:
    """Pool hook for every new connection: its staging table lives as long as it does."""
    await conn.execute(STAGE_DDL)
    await conn.commit()


def _range_reason(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return "value is NaN with Good status"
    if math.isinf(value):
        return "value is infinite"
    return f"value outside the signal's physical range [{low:g}, {high:g}]"


def _origin(readings: Sequence[Reading]) -> str:
    return readings[0].origin if readings else ""


async def write_dead_letters(conn: AsyncConnection, rejected: Sequence[_Rejected]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "insert into dead_letters (origin, reason, payload, detail) "
            "values (%s, %s, %s, %s::jsonb)",
            [(item.reading.origin or "writer", item.reason, _payload(item.reading),
              json.dumps(_detail(item.reading))) for item in rejected])


def _detail(r: Reading) -> dict[str, object]:
    value: object = r.value
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)  # JSON has no NaN/inf
    return {"asset": r.asset, "signal": r.signal, "value": value, "time": r.time.isoformat(),
            "quality": r.quality.name.lower(), "status_code": r.status_code}


def _payload(r: Reading) -> bytes:
    return json.dumps(_detail(r), ensure_ascii=False).encode()
