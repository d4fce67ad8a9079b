"""Versioned SQL migrations, applied at start-up by every process that needs the schema.

Files live in `sagaflow/db/migrations/` as `NNNN_name.sql` and are applied in version order,
each in its own transaction together with its row in `sagaflow_schema_migrations`, so a file is
either fully applied and recorded or not at all. Every process may call `migrate` at start-up:
a session-level advisory lock on a fixed key serialises them, so two replicas starting together
apply each file exactly once and the later one finds nothing to do.

A file that was applied is frozen: its SHA-256 is recorded, and a later run whose file differs
stops with `MigrationError` instead of silently running a database whose schema no longer
matches its source. Change the schema by adding a new file.

A file cannot contain statements that refuse to run in a transaction (`CREATE INDEX
CONCURRENTLY`, `VACUUM`); none are needed so far.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from sagaflow.db.connect import Target, connection

MIGRATION_LOCK_KEY = 0x5A6A_F10E_0000_0001
"""Key of the advisory lock that serialises migrators; fixed forever (changing it would let an
old and a new release migrate at the same time)."""

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<slug>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS sagaflow_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations cannot be applied; the message says which file and what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    """The file name without `.sql`, e.g. `0001_activity_idempotency`."""
    sql: str
    checksum: str
    """SHA-256 of the file's bytes, hex."""


def load_migrations(directory: Path | Traversable | None = None) -> list[Migration]:
    """The migrations in `directory` (default: the packaged ones), sorted by version."""
    root = directory if directory is not None else resources.files("sagaflow.db") / "migrations"
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(
                f"migration file {entry.name!r} is not named NNNN_lowercase_name.sql; "
                "rename it, e.g. '0003_add_index.sql'"
            )
        raw = entry.read_bytes()
        version = int(match["version"])
        name = entry.name.removesuffix(".sql")
        if version in found:
            raise MigrationError(
                f"migrations {found[version].name!r} and {name!r} share version {version}; "
                "give the newer one the next free number"
            )
        found[version] = Migration(
            version=version,
            name=name,
            sql=raw.decode("utf-8"),
            checksum=hashlib.sha256(raw).hexdigest(),
        )
    return [found[v] for v in sorted(found)]


async def migrate(target: Target, *, directory: Path | Traversable | None = None) -> list[str]:
    """Apply every migration not yet applied; return the names applied by this call, in order.

    Safe to call from any number of processes at once: they queue on an advisory lock. Raises
    `MigrationError` when an applied file has changed, or when the database holds a version
    this release lacks below its newest one (versions above it come from a newer release and
    are left alone).
    """
    migrations = load_migrations(directory)
    async with connection(target) as conn:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise MigrationError(
                "migrate() was given a connection inside a transaction; commit or roll back "
                "first, or pass a pool or URL"
            )
        # Session-level lock, so it spans the per-file transactions below; it is released
        # explicitly, and by the server if this process dies.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            return await _apply_locked(conn, migrations)
        finally:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


async def _apply_locked(
    conn: psycopg.AsyncConnection[Any], migrations: Sequence[Migration]
) -> list[str]:
    async with conn.transaction():
        await conn.execute(_CREATE_TABLE)
        cur = await conn.execute(
            "SELECT version, name, checksum FROM sagaflow_schema_migrations ORDER BY version"
        )
        applied: dict[int, tuple[str, str]] = {
            int(v): (str(n), str(c)) for v, n, c in await cur.fetchall()
        }
    known = {m.version: m for m in migrations}
    newest_known = max(known, default=0)
    for version, (name, checksum) in applied.items():
        migration = known.get(version)
        if migration is None:
            if version > newest_known:
                # A newer release migrated first (a rolling update): migrations only add, so
                # this older code still runs against the newer schema.
                continue
            raise MigrationError(
                f"the database has migration {name!r} (version {version}) which this release "
                "does not ship although it ships later versions; two branches probably took "
                "the same number: renumber the unreleased one"
            )
        if migration.name != name:
            raise MigrationError(
                f"version {version} was applied as {name!r} but this release ships "
                f"{migration.name!r} under that number; two branches probably took the same "
                "number: renumber the unreleased one"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.name!r} was applied with checksum {checksum[:12]}… but "
                f"the file now has {migration.checksum[:12]}…; an applied migration must never "
                "change: restore the file as it was and put the change in a new migration file"
            )
    done: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        async with conn.transaction():
            try:
                # No parameters, so psycopg uses the simple protocol and a file may hold many
                # statements.
                await conn.execute(sql.SQL(migration.sql))
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {migration.name!r} failed and was rolled back: {exc}; fix the "
                    "file (it was never applied, so it may still change) and restart"
                ) from exc
            await conn.execute(
                "INSERT INTO sagaflow_schema_migrations (version, name, checksum)"
                " VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        done.append(migration.name)
    return done
