"""Tag registry: (asset, signal) → tag_id, registered from the signal catalogue on first use."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection

from collector.contracts import signals


@dataclass(frozen=True, slots=True)
class Tag:
    tag_id: int
    low: float   # physical range of the signal: values outside it are not stored
    high: float


class TagRegistry:
    """Caches tag ids for the life of the process; tags are never renumbered or deleted."""

    def __init__(self) -> None:
        self._tags: dict[tuple[str, str], Tag] = {}

    @property
    def known(self) -> dict[tuple[str, str], Tag]:
        """(asset, signal) → Tag of every registered tag: the cache itself, for the writer's
        hot loop (read it, never write it)."""
        return self._tags

    async def register(self, conn: AsyncConnection, keys: list[tuple[str, str]]
                       ) -> tuple[dict[tuple[str, str], Tag], dict[tuple[str, str], str]]:
        """Register the catalogued keys not cached yet, in the order given: ({key: Tag} of
        those registered, {key: reason} of those that cannot be). The cache is not touched:
        `remember` the tags once the caller's transaction has committed."""
        found: dict[tuple[str, str], Tag] = {}
        rejected: dict[tuple[str, str], str] = {}
        wanted: list[tuple[str, str, str, str]] = []
        for asset, name in keys:
            if (asset, name) in self._tags:
                continue
            entry = signals.CATALOGUE.get(name)
            if entry is None:
                rejected[(asset, name)] = str(signals.UnknownSignalError(name))
            elif not asset or asset.startswith("/") or asset.endswith("/") or "//" in asset:
                rejected[(asset, name)] = f"malformed asset path {asset!r}"
            else:
                wanted.append((asset, name, entry.unit, entry.kind.value))
        if not wanted:
            return found, rejected
        async with conn.cursor() as cur:
            await cur.executemany(
                "insert into tags (asset, signal, unit, kind) values (%s, %s, %s, %s) "
                "on conflict (asset, signal) do nothing", wanted)
            await cur.execute(
                "select t.asset, t.signal, t.tag_id from tags t "
                "join unnest(%s::text[], %s::text[]) as k(asset, signal) using (asset, signal)",
                ([w[0] for w in wanted], [w[1] for w in wanted]))
            for asset, name, tag_id in await cur.fetchall():
                low, high = signals.CATALOGUE[name].physical_range
                found[(asset, name)] = Tag(tag_id, low, high)
        return found, rejected

    def remember(self, tags: dict[tuple[str, str], Tag]) -> None:
        self._tags.update(tags)
