"""The newest stored sample time per (asset, signal): where a restarted source resumes, so the
gap since then can be read from the server's history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from collector.store.database import connect
from collector.store.settings import StoreSettings

LATEST = """
select t.asset, t.signal, s.time
from tags t
join unnest(%s::text[], %s::text[]) as k(asset, signal) using (asset, signal)
cross join lateral (
    select time from samples where tag_id = t.tag_id and time > now() - %s::interval
    order by time desc limit 1
) s"""


async def latest_sample_times(settings: StoreSettings, keys: Sequence[tuple[str, str]],
                              within_s: float = 30 * 86400.0
                              ) -> dict[tuple[str, str], datetime]:
    """Only `within_s` back (older data is not worth a backfill and would scan old chunks)."""
    conn = await connect(settings.database_url, settings.connect_timeout_s)
    async with conn:
        cursor = await conn.execute(LATEST, ([k[0] for k in keys], [k[1] for k in keys],
                                             f"{int(within_s)} seconds"))
        return {(asset, signal): when for asset, signal, when in await cursor.fetchall()}
