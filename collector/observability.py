"""The collector's /metrics and /health: read from the pipeline, the spool and each source's
health at scrape time (nothing is counted twice on the hot path), plus the end-to-end latency
histograms the pipeline feeds once per durable batch."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from collector.pipeline.pipeline import Pipeline
from collector.pipeline.spool import Spool
from collector.sources.health import SourceHealth

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                   3600.0)


class _State(Collector):
    def __init__(self, pipeline: Pipeline, spool: Spool, sources: Sequence[SourceHealth]) -> None:
        self.pipeline, self.spool, self.sources = pipeline, spool, sources

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        st, spool = self.pipeline.stats, self.spool
        by_source = ["source", "protocol"]
        up = GaugeMetricFamily("smeltwatch_source_up", "1 while the source is connected",
                               labels=by_source)
        received = CounterMetricFamily("smeltwatch_source_readings",
                                       "readings a source handed to the pipeline",
                                       labels=by_source)
        letters = CounterMetricFamily("smeltwatch_source_dead_letters",
                                      "values or messages a source could not decode",
                                      labels=by_source)
        reconnects = CounterMetricFamily("smeltwatch_source_reconnects",
                                         "connections made again after a loss",
                                         labels=by_source)
        backfilled = CounterMetricFamily("smeltwatch_source_backfilled_readings",
                                         "readings recovered from the server's history",
                                         labels=by_source)
        for h in self.sources:
            key = [h.source, h.protocol]
            up.add_metric(key, 1.0 if h.up else 0.0)
            received.add_metric(key, h.readings)
            letters.add_metric(key, h.dead_letters)
            reconnects.add_metric(key, h.reconnects)
            backfilled.add_metric(key, h.backfilled)
        yield from (up, received, letters, reconnects, backfilled)
        yield GaugeMetricFamily("smeltwatch_database_up", "1 while writes succeed",
                                value=1.0 if st.db_up else 0.0)
        for name, text, value in (
                ("readings_stored", "readings inserted into samples", st.readings_stored),
                ("readings_duplicate", "readings already stored with the same value",
                 st.duplicates),
                ("sample_conflicts", "readings already stored with another value (kept aside)",
                 st.conflicts),
                ("dead_letters_written", "rows written to dead_letters", st.dead_letters),
                ("events_stored", "material events stored", st.events_stored),
                ("readings_spooled", "readings written to the spool", st.readings_spooled),
                ("readings_drained", "spooled readings written to the database",
                 st.readings_drained),
                ("readings_dropped", "readings lost: queue and spool full", st.dropped_readings),
                ("database_write_failures", "writes that failed or timed out",
                 st.write_failures)):
            yield CounterMetricFamily(f"smeltwatch_{name}", text, value=value)
        yield GaugeMetricFamily("smeltwatch_queue_readings", "readings waiting to be written",
                                value=self.pipeline.intake.readings)
        yield GaugeMetricFamily("smeltwatch_spool_bytes", "bytes in the spool",
                                value=spool.bytes_used)
        yield GaugeMetricFamily("smeltwatch_spool_fill_ratio", "spool bytes / its limit",
                                value=spool.fill_ratio)
        yield GaugeMetricFamily("smeltwatch_spool_readings", "readings waiting in the spool",
                                value=spool.readings)
        oldest = spool.oldest_received_at
        yield GaugeMetricFamily("smeltwatch_spool_oldest_age_seconds",
                                "age of the oldest spooled batch (0: empty)",
                                value=0.0 if oldest is None else max(0.0, time.time() - oldest))


class CollectorTelemetry:
    def __init__(self, pipeline: Pipeline, spool: Spool, sources: Sequence[SourceHealth]) -> None:
        self.pipeline, self.spool, self.sources = pipeline, spool, sources
        self.registry = CollectorRegistry()
        self.registry.register(_State(pipeline, spool, sources))
        latency = Histogram("smeltwatch_ingest_latency_seconds",
                            "from a batch's receipt, or its newest source time, to durable",
                            ["since"], buckets=LATENCY_BUCKETS, registry=self.registry)
        since_receipt, since_source = latency.labels("receipt"), latency.labels("source_time")

        def observe(receipt_s: float, source_s: float | None) -> None:
            since_receipt.observe(receipt_s)
            if source_s is not None:
                since_source.observe(source_s)

        pipeline.latency_observers.append(observe)

    async def metrics(self) -> tuple[int, str, bytes]:
        return 200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(self.registry)

    def health(self) -> dict[str, object]:
        st, spool = self.pipeline.stats, self.spool
        failing = st.spool_full  # the database away and the spool refusing: data is at risk
        degraded = not st.db_up or not all(h.up for h in self.sources)
        oldest = spool.oldest_received_at
        return {
            "status": "failing" if failing else "degraded" if degraded else "ok",
            "database": {"up": st.db_up, "error": st.db_error, "down_since": st.db_down_since},
            "queue": {"readings": self.pipeline.intake.readings,
                      "dropped_readings": st.dropped_readings},
            "spool": {"bytes": spool.bytes_used, "fill_ratio": round(spool.fill_ratio, 4),
                      "batches": spool.batches, "readings": spool.readings,
                      "oldest_age_s": None if oldest is None else round(time.time() - oldest, 1)},
            "sources": [{"id": h.source, "protocol": h.protocol, "endpoint": h.endpoint,
                         "up": h.up, "since": h.since, "last_error": h.last_error,
                         "reconnects": h.reconnects, "readings": h.readings,
                         "dead_letters": h.dead_letters, "backfilled": h.backfilled,
                         "last_value_at": h.last_value_at} for h in self.sources],
        }

    async def health_route(self) -> tuple[int, str, bytes]:
        body = self.health()
        status = 503 if body["status"] == "failing" else 200
        return status, "application/json", json.dumps(body).encode()
