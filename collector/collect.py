"""`smeltwatch collect`: every source of a plant → one pipeline → TimescaleDB, with /metrics
and /health. Wires the parts; each part is in its own module."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.contracts import Plant
from collector.contracts.plant import MqttSource, OpcUaSource
from collector.observability import CollectorTelemetry
from collector.pipeline.pipeline import Pipeline
from collector.pipeline.settings import PipelineSettings
from collector.pipeline.spool import Spool, spool_bytes_for
from collector.sources.health import SourceHealth
from collector.sources.mqtt.settings import MqttSettings
from collector.sources.mqtt.source import MqttCollectorSource
from collector.sources.opcua.settings import OpcUaSettings
from collector.sources.opcua.source import OpcUaCollectorSource
from collector.store import StoreSettings, StoreWriter
from collector.store.latest import latest_sample_times
from collector.telemetry import TelemetryServer

log = logging.getLogger(__name__)


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMELTWATCH_COLLECTOR_", extra="ignore")

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)  # 0: any free port


class Source(Protocol):
    health: SourceHealth

    async def run(self) -> None: ...


@dataclass
class CollectOptions:
    only: set[str] | None = None                       # source ids (None: all)
    endpoints: dict[str, str] = field(default_factory=dict)  # source id → endpoint / URL
    store: StoreSettings = field(default_factory=StoreSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    opcua: OpcUaSettings = field(default_factory=OpcUaSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)


def expected_rate(plant: Plant, source_ids: set[str], mqtt_per_binding_s: float = 1.0) -> float:
    """Readings a second the plant's bindings give at their sampling intervals (MQTT: one per
    binding per `mqtt_per_binding_s`) — what the spool is sized against."""
    sources = {s.id: s for s in plant.sources if s.id in source_ids}
    rate = 0.0
    for b in plant.bindings():
        source = sources.get(b.source)
        if isinstance(source, OpcUaSource):
            interval = b.sampling_interval_ms if b.sampling_interval_ms is not None \
                else source.sampling_interval_ms
            rate += 1000.0 / max(interval, source.publishing_interval_ms, 1.0)
        elif isinstance(source, MqttSource):
            rate += 1.0 / mqtt_per_binding_s
    return rate


class CollectorApp:
    """`await start()`, `await run_until(stop)`; or `async with` for tests."""

    def __init__(self, plant: Plant, options: CollectOptions | None = None) -> None:
        self.plant = plant
        self.options = o = options or CollectOptions()
        chosen = {s.id for s in plant.sources if o.only is None or s.id in o.only}
        unknown = (o.only or set()) - {s.id for s in plant.sources}
        if unknown:
            raise ValueError(f"no source {', '.join(sorted(unknown))} in the plant model; it "
                             f"has {', '.join(s.id for s in plant.sources)}")
        rate = o.pipeline.spool_rate_per_s or expected_rate(plant, chosen)
        segment = 16 * 2**20  # drained records stay on disk until their segment is deleted
        max_bytes = o.pipeline.spool_max_bytes or (
            spool_bytes_for(o.pipeline.spool_hours, rate) + segment)
        self.rate = rate
        self.spool = Spool(o.pipeline.spool_dir, max_bytes, segment, readings_per_s=rate)
        self.writer = StoreWriter(o.store)
        self.pipeline = Pipeline(self.writer, self.spool, o.pipeline)
        self.sources: list[Source] = []
        for s in plant.sources:
            if s.id not in chosen:
                continue
            if isinstance(s, OpcUaSource):
                self.sources.append(OpcUaCollectorSource(
                    plant, s, self.pipeline, o.opcua, self._resume_points,
                    endpoint=o.endpoints.get(s.id)))
            else:
                self.sources.append(MqttCollectorSource(plant, s, self.pipeline, o.mqtt,
                                                        url=o.endpoints.get(s.id)))
        self.telemetry = CollectorTelemetry(self.pipeline, self.spool,
                                            [src.health for src in self.sources])
        self.http = TelemetryServer(o.telemetry.metrics_host, o.telemetry.metrics_port,
                                    {"/metrics": self.telemetry.metrics,
                                     "/health": self.telemetry.health_route})
        self._pipeline_task: asyncio.Task[None] | None = None
        self._source_tasks: list[asyncio.Task[None]] = []

    async def _resume_points(self, keys: Sequence[tuple[str, str]]
                             ) -> dict[tuple[str, str], datetime]:
        return await latest_sample_times(self.options.store, keys)

    async def start(self) -> None:
        await asyncio.to_thread(self.spool.open)
        await self.writer.open(wait=False)
        if not await self.pipeline.check_database():
            log.warning("the database is not reachable at start; spooling to %s until it is",
                        self.spool.directory)
        await self.http.start()
        self._pipeline_task = asyncio.create_task(self.pipeline.run(), name="pipeline")
        self._source_tasks = [asyncio.create_task(src.run(), name=src.health.source)
                              for src in self.sources]
        log.info("collecting %d sources of %s (≈ %.0f readings/s expected; spool %s, %.1f h "
                 "= %d MB)", len(self.sources), self.plant.site.id, self.rate,
                 self.spool.directory, self.options.pipeline.spool_hours,
                 self.spool.max_bytes // 2**20)

    async def stop(self) -> None:
        """Sources first (MQTT stops taking messages, OPC UA sessions close), then the queue is
        made durable (and acknowledged), then the MQTT sessions are left — kept on the broker."""
        for src in self.sources:
            if isinstance(src, MqttCollectorSource):
                src.pause()
        for src, task in zip(self.sources, self._source_tasks, strict=True):
            if isinstance(src, OpcUaCollectorSource):
                task.cancel()
        await self.pipeline.close()
        if self._pipeline_task is not None:
            try:
                await self._pipeline_task
            except Exception:  # stop the rest all the same
                log.exception("the pipeline failed while stopping")
        for task in self._source_tasks:
            task.cancel()
        await asyncio.gather(*self._source_tasks, return_exceptions=True)
        await self.http.stop()
        await self.writer.close()
        await asyncio.to_thread(self.spool.close)

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            done = asyncio.create_task(stop.wait())
            await asyncio.wait([done, *([self._pipeline_task] if self._pipeline_task else [])],
                               return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
        finally:
            await self.stop()

    async def __aenter__(self) -> CollectorApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
