"""Postgres for sagaflow: connection pools and the versioned schema (`migrate`)."""

from sagaflow.db.connect import DatabaseUnavailable, Target, connection, describe_url, open_pool
from sagaflow.db.migrate import MigrationError, migrate

__all__ = [
    "DatabaseUnavailable",
    "MigrationError",
    "Target",
    "connection",
    "describe_url",
    "migrate",
    "open_pool",
]
