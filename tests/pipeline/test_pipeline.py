"""The pipeline's promises when the database is away and the spool fills: what a source must
acknowledge is held (never acknowledged, never lost), what nobody waits for is dropped — counted,
logged and reported as failing — and nothing of it is silent."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.contracts import Reading
from collector.observability import CollectorTelemetry
from collector.pipeline.batch import Batch
from collector.pipeline.pipeline import Pipeline
from collector.pipeline.settings import PipelineSettings
from collector.pipeline.spool import Spool
from collector.store import StoreSettings, StoreWriter

T0 = datetime(2026, 11, 1, tzinfo=UTC)
NOWHERE = "postgresql://postgres@127.0.0.1:1/smeltwatch"  # nothing listens on port 1


def batch(i: int, acknowledged: list[int] | None = None, size: int = 100) -> Batch:
    readings = [Reading("yulin-1/reduction/furnace-01/zone-1", "zone_temp_c", 1220.0,
                        T0 + timedelta(seconds=i * 100_000 + k), origin="test")
                for k in range(size)]
    on_durable = None if acknowledged is None else (lambda: acknowledged.append(i))
    return Batch("test", readings, on_durable=on_durable)


async def test_a_full_spool_holds_acknowledged_sources_and_drops_the_rest_loudly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = StoreWriter(StoreSettings(database_url=NOWHERE, connect_timeout_s=1))
    await writer.open(wait=False)
    spool = Spool(tmp_path / "spool", max_bytes=64 * 1024, segment_bytes=16 * 1024)
    spool.open()
    pipeline = Pipeline(writer, spool, PipelineSettings(
        batch_max_wait_s=0.02, probe_interval_s=0.2, write_timeout_s=2.0,
        queue_max_readings=1_000))
    assert not await pipeline.check_database()
    running = asyncio.create_task(pipeline.run())
    acknowledged: list[int] = []
    try:
        with caplog.at_level(logging.ERROR, logger="collector.pipeline.pipeline"):
            for i in range(60):                      # OPC UA: offered, never waited for
                pipeline.offer(batch(i))
                await asyncio.sleep(0.01)
            assert await _eventually(lambda: pipeline.stats.dropped_readings > 0)
        assert "DROPPED" in caplog.text and "spool" in caplog.text
        spooled = spool.batches
        # MQTT: a message larger than the room left waits for durability
        await pipeline.submit(batch(1000, acknowledged, size=900))
        await asyncio.sleep(1.0)
        assert acknowledged == []                         # full: not acknowledged...
        assert spool.batches == spooled                   # ...and not lost: held in the queue
        health = CollectorTelemetry(pipeline, spool, []).health()
        assert health["status"] == "failing"
        assert health["queue"]["dropped_readings"] == pipeline.stats.dropped_readings  # type: ignore[index]
    finally:
        await pipeline.close()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await writer.close()
        spool.close()


async def _eventually(check: object, timeout_s: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def test_stopping_with_no_database_and_a_full_spool_does_not_hang(tmp_path: Path) -> None:
    """What cannot be made durable stays unacknowledged (the broker keeps it); the collector
    still stops."""
    writer = StoreWriter(StoreSettings(database_url=NOWHERE, connect_timeout_s=1))
    await writer.open(wait=False)
    spool = Spool(tmp_path / "spool", max_bytes=16 * 1024, segment_bytes=8 * 1024)
    spool.open()
    pipeline = Pipeline(writer, spool, PipelineSettings(batch_max_wait_s=0.02,
                                                        write_timeout_s=2.0))
    assert not await pipeline.check_database()
    running = asyncio.create_task(pipeline.run())
    acknowledged: list[int] = []
    try:
        for i in range(5):
            await pipeline.submit(batch(i, acknowledged, size=300))
        await asyncio.sleep(0.5)
        await pipeline.close()
        await asyncio.wait_for(running, 10)
    finally:
        running.cancel()
        await writer.close()
        spool.close()
    assert len(acknowledged) == spool.batches < 5  # what fitted is durable and acknowledged


async def test_a_batch_the_database_refuses_becomes_a_dead_letter_and_the_rest_is_stored(
        db_url: str, tmp_path: Path) -> None:
    """PostgreSQL refuses text with NUL in it: the batch carrying such a reading is kept whole
    as a dead letter (a spool record), the batches beside it are stored, the MQTT message is
    acknowledged, the pipeline keeps running."""
    async with StoreWriter(StoreSettings(database_url=db_url)) as writer:
        spool = Spool(tmp_path / "spool", max_bytes=2**20)
        spool.open()
        pipeline = Pipeline(writer, spool, PipelineSettings(batch_max_wait_s=0.2))
        running = asyncio.create_task(pipeline.run())
        acknowledged: list[int] = []
        poison = Batch("test", [Reading("yulin-1/reduction/furnace-01/zone\x00-1",
                                        "zone_temp_c", 1220.0, T0, origin="test")],
                       on_durable=lambda: acknowledged.append(-1))
        try:
            await pipeline.submit(batch(1, acknowledged))
            await pipeline.submit(poison)
            await pipeline.submit(batch(2, acknowledged))
            assert await _eventually(lambda: len(acknowledged) == 3)
        finally:
            await pipeline.close()
            await asyncio.wait_for(running, 10)
            spool.close()
    from tests.store.test_writer import rows

    assert await rows(db_url, "select count(*) from samples") == [(200,)]
    [(origin, reason)] = await rows(db_url, "select origin, reason from dead_letters")
    assert origin == "pipeline:test"
    assert reason.startswith("the database refused this batch: ")
    assert pipeline.stats.db_up and spool.batches == 0
