"""The pipeline: sources → intake (bounded) → batching writer → TimescaleDB, with the disk
spool when the database is unreachable or too slow.

One task, the writer loop, owns the order of everything that becomes durable: it takes the
oldest batches, writes them in one transaction (readings, events, dead letters), and only
then calls each batch's `on_durable` (the MQTT acknowledgement) — in intake order. While the
database is down (a write failed or took longer than `write_timeout_s`) the loop appends
batches to the spool instead (fsynced before acknowledging), and a probe task tries the
database every `probe_interval_s`. Once it answers, the loop drains the spool oldest-first,
a few batches per turn between live batches, so live data is never held up for long. Writes
are idempotent, so a batch written twice (a crash between the database commit and the spool
cursor) changes nothing.

A full spool: batches a source must have acknowledged (MQTT) are kept at the front of the
queue and retried — the queue fills, MQTT stops reading, the broker keeps the messages;
batches nobody waits for (OPC UA) are dropped, counted and logged with their time span, as
the server's history can fill that gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import psycopg

from collector.contracts import DeadLetter, MaterialEvent, Reading
from collector.pipeline import spool_codec
from collector.pipeline.batch import Batch
from collector.pipeline.intake import Intake
from collector.pipeline.settings import PipelineSettings
from collector.pipeline.spool import Spool, SpoolFull
from collector.store import StoreUnavailable, WriteResult

log = logging.getLogger(__name__)


class BatchWriter(Protocol):
    async def write(self, readings: Sequence[Reading], events: Sequence[MaterialEvent] = (),
                    dead_letters: Sequence[DeadLetter] = ()) -> WriteResult: ...

    async def ping(self) -> None: ...


@dataclass
class PipelineStats:
    """Counters since start (the metrics read them)."""

    readings_in: int = 0
    readings_stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_letters: int = 0
    events_stored: int = 0
    batches_spooled: int = 0
    readings_spooled: int = 0
    readings_drained: int = 0
    dropped_readings: int = 0
    write_failures: int = 0
    db_up: bool = True
    db_error: str = ""
    db_down_since: float | None = None
    spool_full: bool = False   # the last append was refused: data is being held or dropped


# called per durable batch: (seconds since the batch was received, seconds since the source
# time of its newest reading, or None without readings)
LatencyObserver = Callable[[float, float | None], None]


class Pipeline:
    def __init__(self, writer: BatchWriter, spool: Spool,
                 settings: PipelineSettings | None = None) -> None:
        self.writer, self.spool = writer, spool
        self.settings = settings or PipelineSettings()
        self.intake = Intake(self.settings.queue_max_readings)
        self.stats = PipelineStats()
        self.latency_observers: list[LatencyObserver] = []
        self._spool_broken = False
        self._probe: asyncio.Task[None] | None = None
        self._closing = False

    # --- the way in -------------------------------------------------------------------------
    async def submit(self, batch: Batch) -> None:
        """Queue a batch, waiting while the queue is full (MQTT)."""
        self.stats.readings_in += len(batch.readings)
        await self.intake.submit(batch)

    async def room(self, timeout_s: float) -> bool:
        """Wait until the queue has room (at most `timeout_s`)."""
        return await self.intake.room(timeout_s)

    def offer(self, batch: Batch) -> None:
        """Queue a batch without waiting (OPC UA data-change handlers)."""
        self.stats.readings_in += len(batch.readings)
        if not self.intake.offer(batch):
            self._dropped([batch], "the collector's queue is full")

    # --- the writer loop --------------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled; `close()` ends it after flushing."""
        s = self.settings
        try:
            while not (self._closing and not len(self.intake)):
                draining = self.stats.db_up and self.spool.batches > 0
                batches = await self.intake.take(s.batch_max_readings,
                                                 0.0 if draining else s.batch_max_wait_s)
                if batches:
                    try:
                        await self._make_durable(batches)
                    except Exception:  # a bug, not a fault: say so loudly and keep going
                        log.exception("could not make %d batches durable", len(batches))
                        self._dropped([b for b in batches if b.on_durable is None],
                                      "internal error (see the traceback above)")
                        await asyncio.sleep(1.0)  # unacknowledged MQTT batches come again
                if self.stats.db_up and self.spool.batches > 0 and not self._spool_broken:
                    await self._drain_some()
                elif not batches and self._closing:
                    break
        finally:
            if self._probe is not None:
                self._probe.cancel()

    async def close(self) -> None:
        """Stop taking new work; `run` returns once the queue is durable."""
        self._closing = True

    async def _make_durable(self, batches: list[Batch]) -> None:
        if self.stats.db_up and await self._write(batches):
            self.stats.spool_full = False
            self._acknowledge(batches)
            return
        try:
            await asyncio.to_thread(self.spool.append, batches)
        except (SpoolFull, OSError) as exc:  # full, or the disk failed (ENOSPC, EIO)
            if not isinstance(exc, SpoolFull):
                log.error("cannot write the spool %s: %s", self.spool.directory, exc)
            self.stats.spool_full = True
            waiting = [b for b in batches if b.on_durable is not None]
            self._dropped([b for b in batches if b.on_durable is None], str(exc))
            if waiting and self._closing:
                # stopping with nowhere to put them: unacknowledged, the broker keeps them
                log.warning("stopping with %d unacknowledged batches (no database, spool "
                            "full): their broker sends them again next time", len(waiting))
            elif waiting:
                self.intake.put_back(waiting)
                await asyncio.sleep(min(1.0, self.settings.probe_interval_s))
            return
        self.stats.spool_full = False
        self.stats.batches_spooled += len(batches)
        self.stats.readings_spooled += sum(len(b.readings) for b in batches)
        self._acknowledge(batches)

    async def _write(self, batches: list[Batch]) -> bool:
        """True once the batches are in the database: stored, or — those the database refuses
        for what they contain — as dead letters. False: the database is unavailable."""
        try:
            self._count(await self._write_together(batches))
        except (StoreUnavailable, TimeoutError) as exc:
            self._database_down(exc)
            return False
        except psycopg.Error as exc:  # refused for its content: find the batch that is
            log.warning("the database refused a write (%s); writing the %d batches one by "
                        "one", _first_line(exc), len(batches))
            for batch in batches:
                if not await self._write_alone(batch):
                    return False
        return True

    async def _write_together(self, batches: list[Batch]) -> WriteResult:
        readings = [r for b in batches for r in b.readings]
        events = [e for b in batches for e in b.events]
        letters = [d for b in batches for d in b.dead_letters]
        return await asyncio.wait_for(self.writer.write(readings, events, letters),
                                      self.settings.write_timeout_s)

    async def _write_alone(self, batch: Batch) -> bool:
        try:
            self._count(await self._write_together([batch]))
            return True
        except (StoreUnavailable, TimeoutError) as exc:
            self._database_down(exc)
            return False
        except psycopg.Error as exc:
            poisoned = DeadLetter(
                f"pipeline:{batch.source}", f"the database refused this batch: "
                f"{_first_line(exc)}", _as_payload(batch),
                {"readings": len(batch.readings), "events": len(batch.events),
                 "dead_letters": len(batch.dead_letters),
                 "payload": "a spool record (collector/pipeline/spool_codec.py)"})
            log.error("a batch of %s is kept as a dead letter: %s", batch.source,
                      poisoned.reason)
            try:
                self._count(await asyncio.wait_for(self.writer.write((), (), [poisoned]),
                                                   self.settings.write_timeout_s))
            except (StoreUnavailable, TimeoutError, psycopg.Error) as again:
                self._database_down(again)
                return False
            return True

    async def _drain_some(self) -> None:
        spool = self.spool
        per_batch = max(1, spool.readings // max(1, spool.batches))
        wanted = max(1, min(self.settings.drain_batches_per_turn,
                            self.settings.batch_max_readings // per_batch))
        try:
            pending = await asyncio.to_thread(spool.peek, wanted)
        except Exception:
            log.exception("cannot read the spool %s; draining stops until a restart",
                          spool.directory)
            self._spool_broken = True
            return
        if not pending:
            return
        batches = [batch for _, batch in pending]
        if await self._write(batches):
            await asyncio.to_thread(self.spool.consume, pending[-1][0])
            self.stats.readings_drained += sum(len(b.readings) for b in batches)
            if self.spool.batches == 0:
                log.info("spool drained: every batch kept during the outage is in the database")

    def _acknowledge(self, batches: list[Batch]) -> None:
        now = time.time()
        for b in batches:
            if b.on_durable is not None:
                try:
                    b.on_durable()
                except Exception:  # a source's callback must not stop the writer
                    log.exception("acknowledging a batch of %s failed", b.source)
            if self.latency_observers:
                source_s = None
                if b.readings:
                    source_s = now - max(r.time for r in b.readings).timestamp()
                for observe in self.latency_observers:
                    observe(now - b.received_at, source_s)

    def _count(self, result: WriteResult) -> None:
        st = self.stats
        st.readings_stored += result.inserted
        st.duplicates += result.duplicates
        st.conflicts += result.conflicts
        st.dead_letters += result.dead_lettered
        st.events_stored += result.events_inserted

    def _dropped(self, batches: list[Batch], why: str) -> None:
        for b in batches:
            if b.on_dropped is not None:
                try:
                    b.on_dropped()
                except Exception:
                    log.exception("telling %s about a dropped batch failed", b.source)
        readings = [r for b in batches for r in b.readings]
        if not readings:
            return
        self.stats.dropped_readings += len(readings)
        first, last = min(r.time for r in readings), max(r.time for r in readings)
        log.error("DROPPED %d readings of %s from %s to %s: %s", len(readings),
                  ", ".join(sorted({b.source for b in batches})), first.isoformat(),
                  last.isoformat(), why)

    # --- the database coming and going -----------------------------------------------------
    async def check_database(self) -> bool:
        """At start: is the database there? If not, spool from the first batch on."""
        try:
            await asyncio.wait_for(self.writer.ping(), self.settings.write_timeout_s)
        except (StoreUnavailable, TimeoutError) as exc:
            self._database_down(exc)
            self.stats.write_failures -= 1  # a probe, not a failed write
            return False
        return True

    def _database_down(self, exc: BaseException) -> None:
        st = self.stats
        st.write_failures += 1
        reason = str(exc) or f"no answer within {self.settings.write_timeout_s:g} s"
        if st.db_up:
            log.warning("database unavailable, spooling to %s: %s", self.spool.directory,
                        reason)
            st.db_up, st.db_down_since = False, time.time()
        st.db_error = reason
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        while True:
            await asyncio.sleep(self.settings.probe_interval_s)
            try:
                await asyncio.wait_for(self.writer.ping(), self.settings.write_timeout_s)
            except Exception as exc:  # whatever it is, the database is not back
                self.stats.db_error = str(exc) or "no answer"
                continue
            down_for = time.time() - (self.stats.db_down_since or time.time())
            log.info("database back after %.0f s; draining %d spooled batches", down_for,
                     self.spool.batches)
            self.stats.db_up, self.stats.db_error, self.stats.db_down_since = True, "", None
            return


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_payload(batch: Batch) -> bytes:
    """The batch as a spool record (decodable with spool_codec), or, if even that fails, its
    text."""
    try:
        return spool_codec.encode(batch)
    except Exception:
        return repr(batch).encode("utf-8", "backslashreplace")[:65536]
