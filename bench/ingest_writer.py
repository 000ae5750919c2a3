"""Store-writer throughput against a raw binary COPY of the same rows into the same hypertable.

    .venv/bin/python bench/ingest_writer.py [--rows 500000] [--batch 5000] [--rounds 3]

Both sides get the same readings (500 tags of the demo plant, 1 s apart), the same batch size,
one transaction per batch, into the same freshly truncated `samples` hypertable of a scratch
database (created and dropped here). The writer's price over raw COPY is the staging table,
the INSERT … ON CONFLICT into the hypertable, tag lookup, validation and rollup marking.
Target (issue #2): writer ≥ 60 % of raw COPY at 5,000-row batches.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.contracts import Reading, load_plant
from collector.store import StoreSettings, StoreWriter, migrate

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def make_readings(n_rows: int, n_tags: int) -> list[Reading]:
    plant = load_plant(Path(__file__).resolve().parent.parent / "plants" / "demo.yaml")
    keys = [(b.asset, b.signal) for b in plant.bindings()
            if b.signal in ("zone_temp_c", "vacuum_pa", "condenser_water_temp_c",
                            "air_preheat_temp_c", "gas_preheat_temp_c", "cycle_elapsed_h")]
    keys = (keys * (n_tags // len(keys) + 1))[:n_tags]
    keys = list(dict.fromkeys(keys))
    out = []
    for i in range(n_rows):
        asset, signal = keys[i % len(keys)]
        t = T0 + timedelta(seconds=i // len(keys))
        out.append(Reading(asset, signal, 10.0 + (i % 97) * 0.5, t, origin="bench"))
    return out


async def truncate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("truncate samples, rollup_dirty")


async def run_writer(url: str, readings: list[Reading], batch: int) -> tuple[float, float]:
    """(seconds for new rows, seconds to re-send the same rows: the staging path a replay
    or an overlapping spool drain takes)."""
    await truncate(url)
    async with StoreWriter(StoreSettings(database_url=url, pool_max_size=1)) as writer:
        await writer.put(readings[:1])  # registers nothing new after the first round
        await truncate(url)
        timings = []
        for _ in ("new", "re-sent"):
            start = time.perf_counter()
            for i in range(0, len(readings), batch):
                await writer.put(readings[i:i + batch])
            timings.append(time.perf_counter() - start)
        return timings[0], timings[1]


async def run_raw_copy(url: str, readings: list[Reading], batch: int) -> float:
    await truncate(url)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        tag_ids = {(a, s): t for a, s, t in await (await conn.execute(
            "select asset, signal, tag_id from tags")).fetchall()}
        rows = [(r.time, tag_ids[(r.asset, r.signal)], r.value, int(r.quality), r.status_code,
                 r.server_time) for r in readings]
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            async with conn.cursor() as cur, cur.copy(
                    "copy samples (time, tag_id, value, quality, status_code, server_time) "
                    "from stdin (format binary)") as copy:
                copy.set_types(["timestamptz", "int4", "float8", "int2", "int8", "timestamptz"])
                for row in rows[i:i + batch]:
                    await copy.write_row(row)
            await conn.commit()
        return time.perf_counter() - start


async def count(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute("select count(*) from samples")).fetchone()
        return int(row[0]) if row else 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    name = f"smeltwatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    url = psycopg.conninfo.make_conninfo(ADMIN, dbname=name)
    try:
        await migrate(url)
        readings = make_readings(args.rows, args.tags)
        writer_s, resend_s, raw_s = [], [], []
        for _ in range(args.rounds):  # alternate to spread machine noise over both sides
            new_s, again_s = await run_writer(url, readings, args.batch)
            writer_s.append(new_s)
            resend_s.append(again_s)
            assert await count(url) == len(readings)
            raw_s.append(await run_raw_copy(url, readings, args.batch))
            assert await count(url) == len(readings)
        writer_rate = len(readings) / statistics.median(writer_s)
        raw_rate = len(readings) / statistics.median(raw_s)
        print(f"rows={len(readings):,} batch={args.batch:,} tags={args.tags} "
              f"rounds={args.rounds} (median)")
        print(f"store writer   : {writer_rate:>10,.0f} rows/s")
        print(f"raw binary COPY: {raw_rate:>10,.0f} rows/s")
        print(f"ratio writer/raw: {writer_rate / raw_rate:.2f} (target >= 0.60)")
        resend_rate = len(readings) / statistics.median(resend_s)
        print(f"store writer, every row re-sent (staging path, all duplicates): "
              f"{resend_rate:,.0f} rows/s = {resend_rate / raw_rate:.2f} of raw COPY")
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    asyncio.run(main())
