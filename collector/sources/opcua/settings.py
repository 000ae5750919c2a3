"""OPC UA source settings, from SMELTWATCH_* environment variables (credentials never live in
the plant YAML)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpcUaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMELTWATCH_OPCUA_", extra="ignore")

    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    pki_dir: Path = Path(".smeltwatch/pki")
    request_timeout_s: float = Field(default=10.0, gt=0)
    # no publish response (data or keep-alive) for this long: the connection is dead
    heartbeat_timeout_s: float = Field(default=10.0, gt=0)
    # the session outlives a lost connection this long on the server (orphans expire)
    session_timeout_s: float = Field(default=60.0, gt=0)
    reconnect_max_delay_s: float = Field(default=30.0, gt=0)
    # after a reconnect or a restart, read the gap from the server's history, at most this far
    backfill_max_s: float = Field(default=24 * 3600.0, ge=0)
    # where nothing of a node is known yet (first start, database down): this far back
    backfill_unknown_s: float = Field(default=3600.0, ge=0)
    max_items_per_call: int = Field(default=500, ge=1)  # lowered to the server's limit
