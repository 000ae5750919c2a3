"""`smeltwatch db migrate` on an empty database builds the schema; a second run is a no-op."""

from __future__ import annotations

import subprocess

import psycopg

from collector.store import migrate, status
from tests.conftest import REPO

SMELTWATCH = str(REPO / ".venv" / "bin" / "smeltwatch")


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def test_migrate_creates_hypertables_and_rollups_then_does_nothing(empty_database: str) -> None:
    first = subprocess.run([SMELTWATCH, "db", "migrate", "--database-url", empty_database],
                           capture_output=True, text=True, check=True)
    assert "applied 0001_core" in first.stdout

    hypertables = {r[0] for r in query(
        empty_database, "select hypertable_name from timescaledb_information.hypertables")}
    assert {"samples", "events"} <= hypertables
    license_ = query(empty_database, "show timescaledb.license")[0][0]
    rollups = {r[0]: r[1] for r in query(
        empty_database,
        "select c.relname, c.relkind from pg_class c join pg_namespace n "
        "on n.oid = c.relnamespace where n.nspname = 'public' "
        "and c.relname in ('samples_1m', 'samples_1h')")}
    assert set(rollups) == {"samples_1m", "samples_1h"}
    if license_ == "apache":
        assert {"samples_1m", "samples_1h"} <= hypertables  # plain rollup tables
    else:
        assert set(rollups.values()) == {"v"}  # continuous aggregates are views
    tables = {r[0] for r in query(
        empty_database, "select tablename from pg_tables where schemaname = 'public'")}
    assert {"tags", "sample_conflicts", "dead_letters", "audit_log", "kpis", "alerts",
            "alert_history", "event_keys", "schema_migrations"} <= tables

    before = query(empty_database, "select version, applied_at from schema_migrations")
    second = subprocess.run([SMELTWATCH, "db", "migrate", "--database-url", empty_database],
                            capture_output=True, text=True, check=True)
    assert "nothing to apply" in second.stdout
    assert query(empty_database, "select version, applied_at from schema_migrations") == before


async def test_status_reports_edition_and_pending(empty_database: str) -> None:
    pending = await status(empty_database)
    assert [m.name for m in pending.pending] == ["core", "events_kpis_alerts", "rollups",
                                                  "idempotent_side_tables"]
    assert await migrate(empty_database)
    done = await status(empty_database)
    assert not done.pending and len(done.applied) == 4
    assert done.license in ("apache", "timescale")
    assert await migrate(empty_database) == []


def test_status_exit_code_says_pending(empty_database: str) -> None:
    result = subprocess.run([SMELTWATCH, "db", "status", "--database-url", empty_database],
                            capture_output=True, text=True)
    assert result.returncode == 3
    assert "pending  0001_core" in result.stdout


def test_unreachable_database_is_a_clear_error() -> None:
    result = subprocess.run(
        [SMELTWATCH, "db", "migrate", "--database-url",
         "postgresql://postgres@127.0.0.1:1/smeltwatch"],
        capture_output=True, text=True)
    assert result.returncode == 1
    assert "cannot reach TimescaleDB at 127.0.0.1:1/smeltwatch" in result.stderr
    assert "Traceback" not in result.stderr
