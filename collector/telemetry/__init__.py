"""/metrics (Prometheus) and /health for smeltwatch's long-running processes."""

from collector.telemetry.http import TelemetryServer

__all__ = ["TelemetryServer"]
