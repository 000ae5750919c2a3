"""Pipeline settings, from SMELTWATCH_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMELTWATCH_", extra="ignore")

    # batching writer: a batch goes to the database at this many readings or this much wait
    batch_max_readings: int = Field(default=5_000, ge=1)
    batch_max_wait_s: float = Field(default=0.2, gt=0)
    # the queue between sources and the writer (readings); MQTT waits beyond it
    queue_max_readings: int = Field(default=100_000, ge=1)
    # a write that takes longer counts as the database being unavailable (slow = down)
    write_timeout_s: float = Field(default=10.0, gt=0)
    # how often to try the database while it is down
    probe_interval_s: float = Field(default=2.0, gt=0)
    # the spool: where, and how much — hours at the expected rate (readings/s; None: the
    # collector estimates it from the plant's bindings and sampling intervals)
    spool_dir: Path = Path(".smeltwatch/spool")
    spool_hours: float = Field(default=24.0, gt=0)
    spool_rate_per_s: float | None = Field(default=None, gt=0)
    spool_max_bytes: int | None = Field(default=None, gt=0, description="overrides the hours")
    # while draining the spool, one turn takes up to batch_max_readings readings (at most this
    # many batches), then live data has its turn
    drain_batches_per_turn: int = Field(default=2_000, ge=1)
