"""MQTT ingest: what `smeltwatch collect` stores per second from batched MQTT payloads, against a
raw binary COPY of as many rows into the same table; latency at a steady rate; peak RSS.

    .venv/bin/python bench/ingest_mqtt.py [--seconds 20] [--latency-rate 10000]

- The plant: the demo plant with every signal moved onto its MQTT source (476 tags), its own
  site id, in a scratch database (created, migrated, dropped here).
- The collector: `smeltwatch collect` in its own process (so its peak RSS is its own), QoS 1,
  acknowledging each message once it is durable.
- The publisher: another process, paho QoS 1, 500-value batch payloads
  (`{"seq", "values": [{"topic", "t", "v", "q"}]}` as a gateway sends them), every tag once
  per round; the source time of a round is the wall clock when it is published.
- Sustained throughput: with the collector stopped, the publisher queues `--queued` values in
  the collector's persistent session on the broker; the collector then starts and works them
  off flat out — samples/s = rows / (last − first ingest_time). Nothing else competes for the
  cores but the broker and PostgreSQL. Baseline: raw binary COPY of as many rows, 5,000-row
  batches, into the same emptied `samples` table.
- Live: the publisher flat out for `--seconds` while the collector runs (the publisher takes
  most of a core of its own here): rows stored in that window / its length.
- Latency: the publisher paced at `--latency-rate` values/s for `--seconds`; p50/p99 of
  ingest_time − source time over those rows (publish → decoded → durable in TimescaleDB).
Targets (issue #4, this 2-core machine): ≥ 100k samples/s sustained and ≥ 50 % of raw COPY;
p99 < 1 s at 10k samples/s; RSS < 300 MB. Publisher, broker, collector and PostgreSQL share
the two cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.contracts import CATALOGUE, parse_plant
from collector.store import migrate

REPO = Path(__file__).resolve().parent.parent
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER = ("127.0.0.1", 1883)
BATCH = 500


def plant_yaml(site: str) -> str:
    text = (REPO / "plants" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("id: yulin-1", f"id: {site}", 1)
    return re.sub(r"source: plc-[a-z0-9-]+", "source: plant-mqtt", text)


def publish(site: str, topics: list[tuple[str, float]], seconds: float, rate: float | None,
            rounds: int | None, done: multiprocessing.synchronize.Event) -> None:
    """In its own process: rounds of every topic, in 500-value batches, for `seconds` (or
    `rounds` rounds)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{site}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1_000)
    client.connect(*BROKER)
    client.loop_start()
    batch_topic = f"smelter/v1/{site}/_batch/plant-mqtt"
    pending = []
    seq, last_t = 0, 0.0
    start = time.monotonic()
    per_round = len(topics)
    round_no = 0
    while (time.monotonic() - start < seconds) if rounds is None else round_no < rounds:
        round_no += 1
        if rate:
            due = start + (seq * BATCH) / rate  # paced: wait for this batch's turn
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
        now = max(time.time(), last_t + 0.001)  # unique per tag: 1 ms apart at least
        last_t = now
        stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
        for offset in range(0, per_round, BATCH):
            seq += 1
            values = [{"topic": t, "t": stamp, "v": v, "q": "good"}
                      for t, v in topics[offset:offset + BATCH]]
            info = client.publish(batch_topic, json.dumps({"seq": seq, "values": values},
                                                          separators=(",", ":")), qos=1)
            pending.append(info)
            if len(pending) > 5_000:
                pending.pop(0).wait_for_publish(60)
    for info in pending:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    done.set()


def run_phase(site: str, topics: list[tuple[str, float]], seconds: float,
              rate: float | None, rounds: int | None = None) -> tuple[float, float]:
    """(wall start, wall end) of publishing."""
    done = multiprocessing.get_context("spawn").Event()
    process = multiprocessing.get_context("spawn").Process(
        target=publish, args=(site, topics, seconds, rate, rounds, done))
    start = time.time()
    process.start()
    process.join()
    return start, time.time()


def stored(url: str, since: float, until: float) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select count(*) from samples where ingest_time >= to_timestamp(%s) "
                           "and ingest_time < to_timestamp(%s)", (since, until)).fetchone()
        return int(row[0]) if row else 0


def total(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select count(*) from samples").fetchone()
        return int(row[0]) if row else 0


def wait_drained(url: str, timeout_s: float = 600.0) -> int:
    last, deadline = -1, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = total(url)
        if now == last:
            return now
        last = now
        time.sleep(2.0)
    return last


def latency(url: str, since: float, until: float) -> tuple[float, float, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select percentile_cont(0.5) within group (order by d), "
            "percentile_cont(0.99) within group (order by d), count(*) from ("
            " select extract(epoch from ingest_time - time) as d from samples"
            " where time >= to_timestamp(%s) and time < to_timestamp(%s)) x",
            (since, until)).fetchone()
        assert row is not None
        return float(row[0]), float(row[1]), int(row[2])


def raw_copy_rate(url: str, rows: int) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("truncate samples, rollup_dirty")
        tags = [t for (t,) in conn.execute("select tag_id from tags order by tag_id")]
        conn.commit()
        t0 = datetime(2026, 11, 1, tzinfo=UTC)
        data = [(t0 + timedelta(milliseconds=i // len(tags)), tags[i % len(tags)], 900.0, 0, 0,
                 None) for i in range(rows)]
        start = time.perf_counter()
        for i in range(0, rows, 5_000):
            with conn.cursor() as cur, cur.copy(
                    "copy samples (time, tag_id, value, quality, status_code, server_time) "
                    "from stdin (format binary)") as copy:
                copy.set_types(["timestamptz", "int4", "float8", "int2", "int8", "timestamptz"])
                for row in data[i:i + 5_000]:
                    copy.write_row(row)
            conn.commit()
        return rows / (time.perf_counter() - start)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ingest_rate(url: str) -> tuple[int, float]:
    with psycopg.connect(url) as conn:
        row = conn.execute("select count(*), extract(epoch from max(ingest_time) - "
                           "min(ingest_time)) from samples").fetchone()
        assert row is not None
        return int(row[0]), float(row[1])


def start_collector(workdir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (workdir / "collector.log").open("ab")
    process = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "smeltwatch"), "collect", "--plant",
         str(workdir / "plant.yaml"), "--only", "plant-mqtt", "--metrics-port", "0"],
        env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(3.0)  # connected and subscribed
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--queued", type=int, default=3_000_000)
    parser.add_argument("--latency-rate", type=float, default=10_000.0)
    args = parser.parse_args()

    site = f"bench-{uuid.uuid4().hex[:6]}"
    name = f"smeltwatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    url = psycopg.conninfo.make_conninfo(ADMIN, dbname=name)
    workdir = Path(tempfile.mkdtemp(prefix="smeltwatch-bench-"))
    collector: subprocess.Popen[bytes] | None = None
    try:
        import asyncio

        asyncio.run(migrate(url))
        text = plant_yaml(site)
        plant = parse_plant(text)
        (workdir / "plant.yaml").write_text(text, encoding="utf-8")
        topics = [(b.address, sum(CATALOGUE[b.signal].physical_range) / 2)
                  for b in plant.bindings()]
        env = {**os.environ, "SMELTWATCH_DATABASE_URL": url,
               "SMELTWATCH_SPOOL_DIR": str(workdir / "spool"),
               "SMELTWATCH_MQTT_CLIENT_ID": f"bench-collector-{site}"}
        collector = start_collector(workdir, env)   # its session begins
        collector.terminate()
        collector.wait(60)
        run_phase(site, topics, args.queued / len(topics) / 1000, None, rounds=args.queued //
                  len(topics))
        collector = start_collector(workdir, env)
        queued = wait_drained(url)
        queued_rows, queued_span = ingest_rate(url)
        sustained = queued_rows / queued_span
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("truncate samples, rollup_dirty")

        start, end = run_phase(site, topics, args.seconds, None)
        in_window = stored(url, start, end)
        drained = wait_drained(url)
        live = in_window / (end - start)
        lat_start, lat_end = run_phase(site, topics, args.seconds, args.latency_rate)
        wait_drained(url)
        p50, p99, n = latency(url, lat_start + 2, lat_end)  # after the first two seconds
        rss = peak_rss_mb(collector.pid)
        collector.terminate()
        collector.wait(60)
        collector = None
        raw = raw_copy_rate(url, queued_rows)
        print(f"{len(topics)} tags on MQTT, 500-value batch payloads, QoS 1")
        print(f"collector, sustained (queued)  : {sustained:>10,.0f} samples/s "
              f"({queued_rows:,} rows in {queued_span:.1f} s; {queued:,} stored)")
        print(f"raw binary COPY, same table    : {raw:>10,.0f} rows/s")
        print(f"ratio collector/raw COPY       : {sustained / raw:10.2f}  (target >= 0.50; "
              f">= 100k samples/s)")
        print(f"collector, publisher flat out  : {live:>10,.0f} samples/s stored in "
              f"{args.seconds:g} s ({in_window:,} rows; {drained:,} by the end)")
        print(f"latency at {args.latency_rate:,.0f} values/s     : p50 {p50 * 1000:,.0f} ms, "
              f"p99 {p99 * 1000:,.0f} ms over {n:,} samples (target p99 < 1 s)")
        print(f"collector peak RSS            : {rss:,.0f} MB (target < 300 MB)")
    finally:
        if collector is not None:
            collector.kill()
            collector.wait()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    main()
