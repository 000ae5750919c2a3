"""Connections to TimescaleDB, and the one error every caller gets when it is unreachable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from collector.store.settings import StoreSettings


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or refused the connection; the data was not written."""


def describe_target(url: str) -> str:
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable database URL>"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '?')}"


def unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(
        f"cannot reach TimescaleDB at {describe_target(url)}: {reason}. Is the database "
        "running? Locally: scripts/setup-local-stack; with Docker: docker compose up -d db; "
        "the address comes from SMELTWATCH_DATABASE_URL."
    )


async def connect(url: str, timeout_s: float = 5.0, autocommit: bool = False) -> AsyncConnection:
    try:
        return await AsyncConnection.connect(url, connect_timeout=max(1, int(timeout_s)),
                                             autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise unavailable(url, exc) from exc


def make_pool(settings: StoreSettings,
              configure: Callable[[AsyncConnection], Awaitable[None]] | None = None,
              ) -> AsyncConnectionPool:
    """A pool that is not yet open: opening it (`await pool.open()`) does the I/O."""
    return AsyncConnectionPool(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.connect_timeout_s,
        kwargs={"connect_timeout": max(1, int(settings.connect_timeout_s))},
        open=False,
        configure=configure,
        name="smeltwatch-store",
    )


@asynccontextmanager
async def pooled(pool: AsyncConnectionPool, url: str) -> AsyncIterator[AsyncConnection]:
    """A connection from the pool; connection failures become StoreUnavailable."""
    try:
        async with pool.connection() as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise unavailable(url, exc) from exc
