"""The store writer: the sink that makes Readings durable in TimescaleDB.

Per batch, in one transaction:
  1. readings that cannot be stored (unknown signal, naive time, NaN or out-of-range value
     with Good status) become dead_letters rows with the reason;
  2. the rest are written by binary COPY:
     - fast path: straight into the samples hypertable, inside a savepoint. The unique
       (tag_id, time) index makes this safe: if any row is already stored, the COPY fails
       as a whole, the savepoint rolls back and the batch takes the staging path;
     - staging path: COPY into a temporary staging table, then
       `INSERT … SELECT … ON CONFLICT DO NOTHING` into samples; only if some rows were
       already there, a *different* value at an existing (tag, time) is recorded in
       sample_conflicts (the stored value stays);
  3. the hours the batch touched are marked for the rollup refresh.
The same batch written twice leaves the same rows: writes are idempotent. INSERT … ON CONFLICT
into a hypertable is slower than COPY (measured in bench/ingest_writer.py), which is why the
fast path exists; after a batch that overlapped stored data (a replay, a spool drain), the
writer stays on the staging path until a batch comes through without any overlap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from collector.contracts import DeadLetter, MaterialEvent, Quality, Reading
from collector.store.binary_copy import Row, pack_rows
from collector.store.database import make_pool, pooled, unavailable
from collector.store.events import write_events
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
DIRECT_COPY = ("copy samples (time, tag_id, value, quality, status_code, server_time) "
               "from stdin (format binary)")
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
where x.value is distinct from s.value or x.quality <> s.quality
on conflict do nothing"""
MARK_DIRTY = """
insert into rollup_dirty (hour)
select to_timestamp(h * 3600) from unnest(%s::bigint[]) as h
on conflict do nothing"""



@dataclass
class WriteResult:
    inserted: int = 0
    duplicates: int = 0      # already stored (or twice in the batch) with the same value
    conflicts: int = 0       # already stored (or earlier in the batch) with another value
    dead_lettered: int = 0   # everything that became a dead_letters row, from any part
    reasons: dict[str, int] = field(default_factory=dict)
    events_inserted: int = 0
    events_duplicates: int = 0


@dataclass(frozen=True, slots=True)
class _Rejected:
    reading: Reading
    reason: str

    def dead_letter(self) -> DeadLetter:
        r = self.reading
        detail = _detail(r)
        return DeadLetter(r.origin or "writer", self.reason,
                          json.dumps(detail, ensure_ascii=False).encode(), detail)


class StoreWriter:
    """A Sink: `await writer.put(readings)` returns once the batch is durable (or raises
    StoreUnavailable, and nothing of the batch was written)."""

    def __init__(self, settings: StoreSettings | None = None) -> None:
        self._settings = settings or StoreSettings()
        self._pool: AsyncConnectionPool = make_pool(self._settings, configure=_create_stage)
        self._tags = TagRegistry()
        self._optimistic = True  # try the direct COPY first (see the module docstring)

    async def open(self, wait: bool = True) -> None:
        """`wait=False`: never fails — the pool keeps connecting in the background (a collector
        starts while the database is down, and spools meanwhile)."""
        try:
            await self._pool.open(wait=wait, timeout=self._settings.connect_timeout_s)
        except Exception as exc:
            raise unavailable(self._settings.database_url, exc) from exc

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> StoreWriter:
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers now."""
        url = self._settings.database_url
        try:
            async with pooled(self._pool, url) as conn:
                await conn.execute("select 1")
        except psycopg.OperationalError as exc:
            raise unavailable(url, exc) from exc

    async def put(self, readings: Sequence[Reading]) -> WriteResult:
        return await self.write(readings)

    async def write(self, readings: Sequence[Reading], events: Sequence[MaterialEvent] = (),
                    dead_letters: Sequence[DeadLetter] = ()) -> WriteResult:
        """Readings, material events and the sources' dead letters in one transaction:
        all of it is durable when this returns, or none of it (StoreUnavailable)."""
        if not (readings or events or dead_letters):
            return WriteResult()
        url = self._settings.database_url
        try:
            rows, rejected = await self._prepare(readings)
            async with pooled(self._pool, url) as conn, conn.transaction():
                result = await self._write(conn, rows, _origin(readings))
                letters = [item.dead_letter() for item in rejected] + list(dead_letters)
                if events:
                    stored = await write_events(conn, events)
                    result.events_inserted = stored.inserted
                    result.events_duplicates = stored.duplicates
                    letters += stored.rejected
                if letters:
                    await write_dead_letters(conn, letters)
                    _count(result, letters)
                return result
        except psycopg.OperationalError as exc:
            raise unavailable(url, exc) from exc

    async def _prepare(self, readings: Sequence[Reading]) -> tuple[list[Row], list[_Rejected]]:
        """Rows to store and what cannot be stored. Tags seen for the first time are registered
        first, in a transaction of their own: the cache only learns ids that are committed
        (a batch transaction that rolled back would leave ids pointing nowhere)."""
        rows, rejected, unregistered = self._rows(readings)
        if unregistered:
            keys = list(dict.fromkeys((r.asset, r.signal) for r in unregistered))
            async with pooled(self._pool, self._settings.database_url) as conn:
                async with conn.transaction():
                    found, reasons = await self._tags.register(conn, keys)
                self._tags.remember(found)
            more_rows, more_rejected, still = self._rows(unregistered)
            rows += more_rows
            rejected += more_rejected
            rejected += [_Rejected(r, reasons.get((r.asset, r.signal), "tag not registered"))
                         for r in still]
        return rows, rejected

    async def _write(self, conn: AsyncConnection, rows: list[Row], origin: str) -> WriteResult:
        result = WriteResult()
        if rows:
            data = pack_rows(rows)
            if not (self._optimistic and await self._copy_direct(conn, data, len(rows),
                                                                 result)):
                await self._copy_staged(conn, data, len(rows), origin, result)
                self._optimistic = result.inserted == len(rows)
            hours = list({int(t.timestamp()) // 3600 for t in {row[0] for row in rows}})
            await conn.execute(MARK_DIRTY, (hours,))
        return result

    def _rows(self, readings: Sequence[Reading]
              ) -> tuple[list[Row], list[_Rejected], list[Reading]]:
        """Hot path, one pass: (rows to store, rejected, readings whose tag is not known yet)."""
        rows: list[Row] = []
        rejected: list[_Rejected] = []
        unregistered: list[Reading] = []
        lookup = self._tags.known.get  # the hot path: one dict lookup per reading
        good = Quality.GOOD
        for r in readings:
            tag = lookup((r.asset, r.signal))
            if tag is None:
                unregistered.append(r)
                continue
            t = r.time
            if t.tzinfo is None:
                rejected.append(_Rejected(r, "naive source timestamp (no time zone)"))
                continue
            v = r.value
            if v is not None:
                if not (tag.low <= v <= tag.high):
                    if r.quality == good or math.isfinite(v):
                        rejected.append(_Rejected(r, _range_reason(v, tag.low, tag.high)))
                        continue
                    v = None  # NaN/inf under a Bad or Uncertain status: keep the status only
            elif r.quality == good:
                rejected.append(_Rejected(r, "Good status without a value"))
                continue
            rows.append((t, tag.tag_id, v, r.quality, r.status_code, r.server_time))
        return rows, rejected, unregistered

    @staticmethod
    async def _copy_direct(conn: AsyncConnection, data: bytes, n_rows: int,
                           result: WriteResult) -> bool:
        """COPY straight into samples; False (and nothing written) if any row exists already."""
        try:
            async with conn.transaction(), conn.cursor() as cur, cur.copy(DIRECT_COPY) as copy:
                await copy.write(data)
        except psycopg.errors.UniqueViolation:
            return False
        result.inserted = n_rows
        return True

    @staticmethod
    async def _copy_staged(conn: AsyncConnection, data: bytes, n_rows: int, origin: str,
                           result: WriteResult) -> None:
        async with conn.cursor() as cur:
            async with cur.copy(STAGE_COPY) as copy:
                await copy.write(data)
            await cur.execute(INSERT_FROM_STAGE)
            result.inserted = cur.rowcount
            if result.inserted < n_rows:
                await cur.execute(RECORD_CONFLICTS, (origin,))
                result.conflicts = cur.rowcount
                result.duplicates += n_rows - result.inserted - result.conflicts


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


async def write_dead_letters(conn: AsyncConnection, letters: Sequence[DeadLetter]) -> None:
    """Identical dead letters (a replayed message) are stored once, by a digest of origin,
    reason, payload and detail. Text PostgreSQL cannot hold (NUL) is shown escaped."""
    rows = []
    for d in letters:
        # jsonb refuses \u0000 and text refuses NUL: keep them visible, not fatal
        detail = json.dumps(d.detail, ensure_ascii=False, default=str).replace(
            "\\u0000", "\\\\u0000")
        origin, reason = d.origin.replace("\x00", "\\x00"), d.reason.replace("\x00", "\\x00")
        fingerprint = hashlib.sha256(f"{origin}\x1f{reason}".encode("utf-8", "surrogatepass")
                                     + d.payload + detail.encode("utf-8", "surrogatepass")
                                     ).digest()
        rows.append((origin, reason, d.payload, detail, fingerprint))
    async with conn.cursor() as cur:
        await cur.executemany(
            "insert into dead_letters (origin, reason, payload, detail, fingerprint) "
            "values (%s, %s, %s, %s::jsonb, %s) on conflict (fingerprint) do nothing", rows)


def _count(result: WriteResult, letters: Sequence[DeadLetter]) -> None:
    result.dead_lettered += len(letters)
    for d in letters:
        result.reasons[d.reason] = result.reasons.get(d.reason, 0) + 1


def _detail(r: Reading) -> dict[str, object]:
    value: object = r.value
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)  # JSON has no NaN/inf
    return {"asset": r.asset, "signal": r.signal, "value": value, "time": r.time.isoformat(),
            "quality": r.quality.name.lower(), "status_code": r.status_code}
