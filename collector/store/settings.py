"""Database settings, from SMELTWATCH_* environment variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/smeltwatch"


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMELTWATCH_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    pool_min_size: int = 1
    pool_max_size: int = 4
    # How long a writer waits for a connection before it reports the database unreachable.
    connect_timeout_s: float = 5.0
