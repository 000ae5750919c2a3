"""MQTT source settings, from SMELTWATCH_MQTT_* environment variables (credentials never live in
the plant YAML)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MqttSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMELTWATCH_MQTT_", extra="ignore")

    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    # one persistent session per collector instance: keep the id stable across restarts
    client_id: str = Field(default_factory=lambda: f"smeltwatch-collector-{socket.gethostname()}")
    # how long the broker keeps our session (and queues QoS 1 messages) while we are away:
    # the outage we promise to survive, together with the broker's queue limits
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    keepalive_s: int = Field(default=30, ge=5)
    # MQTT 5 Receive Maximum: QoS 1 messages in flight to us before the broker waits
    receive_maximum: int = Field(default=1_000, ge=1, le=65_535)
    # several collectors share one feed through `$share/<group>/…` (MQTT 5 shared
    # subscriptions); each must have its own client id
    share_group: str | None = None
    reconnect_max_delay_s: int = Field(default=30, ge=1)
