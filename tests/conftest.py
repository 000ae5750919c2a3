"""Shared fixtures. Tests talk to the real TimescaleDB of the local stack
(scripts/setup-local-stack); each test session gets a database of its own, dropped at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from collector.store import StoreSettings, migrate

REPO = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("SMELTWATCH_TEST_ADMIN_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    return make_conninfo(ADMIN_URL, dbname=name)


def create_database(prefix: str = "smeltwatch_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'create database "{name}"')
    except psycopg.OperationalError as exc:
        pytest.exit(f"cannot reach PostgreSQL at {conninfo_to_dict(ADMIN_URL).get('host')}: "
                    f"{exc}. Run scripts/setup-local-stack first.", returncode=3)
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A brand-new database with nothing in it (not even the extension)."""
    name = create_database("smeltwatch_empty")
    yield database_url(name)
    drop_database(name)


@pytest.fixture(scope="session")
async def migrated_url() -> AsyncIterator[str]:
    name = create_database()
    url = database_url(name)
    await migrate(url)
    yield url
    drop_database(name)


TABLES = ("samples", "sample_conflicts", "dead_letters", "tags", "samples_1m", "samples_1h",
          "rollup_dirty", "events", "event_keys", "kpis", "alert_history", "alerts",
          "audit_log")


@pytest.fixture
async def db_url(migrated_url: str) -> str:
    """The session's migrated database, emptied before each test."""
    async with await psycopg.AsyncConnection.connect(migrated_url, autocommit=True) as conn:
        await conn.execute(f"truncate {', '.join(TABLES)} restart identity cascade")
    return migrated_url


@pytest.fixture
def store_settings(db_url: str) -> StoreSettings:
    return StoreSettings(database_url=db_url, pool_max_size=2)
