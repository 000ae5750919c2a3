"""Versioned SQL migrations, applied in order and recorded in schema_migrations.

Files are `NNNN_name.sql`, or a pair `NNNN_name.apache.sql` / `NNNN_name.licensed.sql` where
the Apache and the Timescale-licensed editions of TimescaleDB need different DDL (continuous
aggregates and policies exist only in the latter). The edition is detected at migrate time
from `timescaledb.license`; the variant applied is recorded.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection, errors

from collector.store.database import connect

log = logging.getLogger(__name__)

_FILE = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<variant>apache|licensed))?\.sql$")
# Any constant: serialises concurrent `db migrate` runs against one database.
_LOCK_KEY = 0x5E17_0A7C


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    variant: str  # "any", "apache" or "licensed"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Status:
    license: str
    extension_version: str
    applied: list[tuple[int, str, str]]
    pending: list[Migration]

    @property
    def rollups(self) -> str:
        return "continuous aggregates" if self.license == "timescale" else "plain tables"


def available_migrations(license_: str) -> list[Migration]:
    """The migrations for this edition, in order; one file per version."""
    want = "licensed" if license_ == "timescale" else "apache"
    by_version: dict[int, Migration] = {}
    folder = resources.files("collector.store").joinpath("migrations")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        match = _FILE.match(entry.name)
        if not match:
            continue
        variant = match["variant"] or "any"
        if variant not in ("any", want):
            continue
        version = int(match["version"])
        if version in by_version:
            raise MigrationError(f"two migrations for version {version}: "
                                 f"{by_version[version].name} and {match['name']}")
        by_version[version] = Migration(version, match["name"], variant, entry.read_text())
    return [by_version[v] for v in sorted(by_version)]


async def _prepare(conn: AsyncConnection) -> tuple[str, str]:
    try:
        await conn.execute("create extension if not exists timescaledb")
    except (errors.FeatureNotSupported, errors.UndefinedFile, errors.ObjectNotInPrerequisiteState,
            errors.InsufficientPrivilege) as exc:
        raise MigrationError(
            "TimescaleDB is not available in this PostgreSQL server "
            f"({str(exc).splitlines()[0]}). Run scripts/setup-local-stack (it builds and "
            "preloads the extension), or use the docker-compose stack."
        ) from exc
    await conn.execute("""
        create table if not exists schema_migrations (
            version     integer primary key,
            name        text not null,
            variant     text not null,
            checksum    text not null,
            applied_at  timestamptz not null default now()
        )""")
    row = await (await conn.execute(
        "select current_setting('timescaledb.license', true), extversion "
        "from pg_extension where extname = 'timescaledb'")).fetchone()
    assert row is not None
    return str(row[0] or "apache"), str(row[1])


async def status(url: str) -> Status:
    conn = await connect(url, autocommit=True)
    async with conn:
        license_, version = await _prepare(conn)
        applied = [(int(r[0]), str(r[1]), str(r[2])) for r in await (await conn.execute(
            "select version, name, variant from schema_migrations order by version")).fetchall()]
    done = {v for v, _, _ in applied}
    pending = [m for m in available_migrations(license_) if m.version not in done]
    return Status(license_, version, applied, pending)


async def migrate(url: str) -> list[Migration]:
    """Apply every pending migration; returns those applied (none on a second run)."""
    conn = await connect(url, autocommit=True)
    async with conn:
        await conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            return await _apply_pending(conn)
        finally:
            await conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))


async def _apply_pending(conn: AsyncConnection) -> list[Migration]:
    license_, _ = await _prepare(conn)
    rows = await (await conn.execute(
        "select version, checksum, variant from schema_migrations")).fetchall()
    applied = {int(r[0]): (str(r[1]), str(r[2])) for r in rows}
    done: list[Migration] = []
    for migration in available_migrations(license_):
        if migration.version in applied:
            checksum, variant = applied[migration.version]
            if checksum != migration.checksum and variant == migration.variant:
                log.warning("migration %04d_%s changed after it was applied (checksum %s, now "
                            "%s); migrations are append-only: add a new one instead",
                            migration.version, migration.name, checksum, migration.checksum)
            continue
        log.info("applying migration %04d_%s (%s)", migration.version, migration.name,
                 migration.variant)
        async with conn.transaction():
            await conn.execute(migration.sql.encode())
            await conn.execute(
                "insert into schema_migrations (version, name, variant, checksum) "
                "values (%s, %s, %s, %s)",
                (migration.version, migration.name, migration.variant, migration.checksum))
        done.append(migration)
    return done
