"""TimescaleDB storage: schema migrations, the store writer, rollups."""

from collector.store.database import StoreUnavailable
from collector.store.migrate import MigrationError, migrate, status
from collector.store.rollups import refresh_rollups
from collector.store.settings import StoreSettings
from collector.store.writer import StoreWriter, WriteResult

__all__ = [
    "MigrationError",
    "StoreSettings",
    "StoreUnavailable",
    "StoreWriter",
    "WriteResult",
    "migrate",
    "refresh_rollups",
    "status",
]
