"""Keep samples_1m and samples_1h up to date with what the writer stored, late data included.

The writer marks every hour its batches touch in rollup_dirty. This job takes those hours
and recomputes them: on the Apache edition by rewriting the plain rollup tables from raw
samples over `time_bucket`; on the licensed edition by refreshing the continuous aggregates
over those hours (their own policies cover recent data; this covers data that arrives later
than the policy window).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection, sql

from collector.store.database import connect

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)

_DELETE = sql.SQL("delete from {table} where bucket >= %s and bucket < %s")
_RECOMPUTE = sql.SQL("""
insert into {table} (bucket, tag_id, n, avg_value, min_value, max_value, first_value, last_value)
select time_bucket(%(width)s::interval, time), tag_id, count(*), avg(value), min(value),
       max(value), first(value, time), last(value, time)
from samples
where time >= %(start)s and time < %(end)s and quality = 0
group by 1, 2""")


@dataclass(frozen=True)
class RefreshResult:
    hours: int
    ranges: list[tuple[datetime, datetime]]


def contiguous(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """[10:00, 11:00, 13:00] → [(10:00, 12:00), (13:00, 14:00)]"""
    ranges: list[tuple[datetime, datetime]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1] = (ranges[-1][0], hour + HOUR)
        else:
            ranges.append((hour, hour + HOUR))
    return ranges


async def refresh_rollups(url: str) -> RefreshResult:
    conn = await connect(url, autocommit=True)
    async with conn:
        licensed = await _is_licensed(conn)
        if licensed:
            return await _refresh_continuous(conn)
        return await _refresh_tables(conn)


async def _is_licensed(conn: AsyncConnection) -> bool:
    row = await (await conn.execute(
        "select variant from schema_migrations where name = 'rollups'")).fetchone()
    return row is not None and row[0] == "licensed"


async def _take_dirty(conn: AsyncConnection) -> list[datetime]:
    rows = await (await conn.execute("delete from rollup_dirty returning hour")).fetchall()
    return [r[0] for r in rows]


async def _refresh_tables(conn: AsyncConnection) -> RefreshResult:
    async with conn.transaction():
        ranges = contiguous(await _take_dirty(conn))
        for start, end in ranges:
            for table, width in (("samples_1m", "1 minute"), ("samples_1h", "1 hour")):
                name = sql.Identifier(table)
                await conn.execute(_DELETE.format(table=name), (start, end))
                await conn.execute(_RECOMPUTE.format(table=name),
                                   {"width": width, "start": start, "end": end})
    return RefreshResult(sum(int((e - s) / HOUR) for s, e in ranges), ranges)


async def _refresh_continuous(conn: AsyncConnection) -> RefreshResult:
    hours = await _take_dirty(conn)
    ranges = contiguous(hours)
    try:
        for start, end in ranges:
            for view in ("samples_1m", "samples_1h"):
                await conn.execute("call refresh_continuous_aggregate(%s, %s, %s)",
                                   (view, start, end))
    except Exception:
        # Put the hours back so the next run tries again; nothing is forgotten.
        await conn.execute("insert into rollup_dirty (hour) select unnest(%s::timestamptz[]) "
                           "on conflict do nothing", (hours,))
        raise
    return RefreshResult(len(hours), ranges)
