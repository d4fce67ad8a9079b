"""Versioned migrations on a real Postgres: applied once, frozen, serialised across processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sagaflow.db import MigrationError, migrate
from sagaflow.db.migrate import MIGRATION_LOCK_KEY, load_migrations
from sagaflow.db.testing import run_in_scratch_schema
from tests.support import assert_eventually_async

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = [m.name for m in load_migrations()]


async def _recorded(url: str) -> list[tuple[int, str, str]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT version, name, checksum FROM sagaflow_schema_migrations ORDER BY version"
        )
        return [(int(v), str(n), str(c)) for v, n, c in await cur.fetchall()]


def test_packaged_migrations_apply_once_and_are_recorded(database_url: str) -> None:
    assert PACKAGED[:2] == ["0001_activity_idempotency", "0002_shop"]

    async def body(url: str) -> None:
        assert await migrate(url) == PACKAGED
        assert await migrate(url) == []
        expected = [(m.version, m.name, m.checksum) for m in load_migrations()]
        assert await _recorded(url) == expected

    run_in_scratch_schema(database_url, body)


def test_changed_applied_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    first = tmp_path / "0001_first.sql"
    first.write_text("CREATE TABLE first_table (id int);\n")

    async def body(url: str) -> None:
        assert await migrate(url, directory=tmp_path) == ["0001_first"]
        first.write_text("CREATE TABLE first_table (id bigint);\n")
        with pytest.raises(MigrationError, match=r"'0001_first'.*put the change in a new"):
            await migrate(url, directory=tmp_path)

    run_in_scratch_schema(database_url, body)


def test_failed_migration_rolls_back_whole_file(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int);\nSELECT * FROM nowhere;")

    async def body(url: str) -> None:
        with pytest.raises(MigrationError, match=r"'0002_bad' failed and was rolled back"):
            await migrate(url, directory=tmp_path)
        assert [name for _, name, _ in await _recorded(url)] == ["0001_good"]
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute("SELECT to_regclass('good'), to_regclass('half')")
            assert await cur.fetchone() == ("good", None)
        (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int);")
        assert await migrate(url, directory=tmp_path) == ["0002_bad"]

    run_in_scratch_schema(database_url, body)


def test_numbering_clash_between_branches_is_refused(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_mine.sql").write_text("SELECT 1;")

    async def body(url: str) -> None:
        await migrate(url, directory=tmp_path)
        (tmp_path / "0001_mine.sql").rename(tmp_path / "0001_theirs.sql")
        with pytest.raises(MigrationError, match="renumber"):
            await migrate(url, directory=tmp_path)
        # A version newer than any this release ships came from a newer release: tolerated.
        (tmp_path / "0001_theirs.sql").rename(tmp_path / "0001_mine.sql")
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await conn.execute(
                "INSERT INTO sagaflow_schema_migrations (version, name, checksum)"
                " VALUES (7, '0007_future', 'x')"
            )
        assert await migrate(url, directory=tmp_path) == []

    run_in_scratch_schema(database_url, body)


def test_migrate_waits_for_the_advisory_lock(database_url: str) -> None:
    async def body(url: str) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as holder:
            await holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            task = asyncio.create_task(migrate(url))

            async def queued() -> bool:
                assert not task.done(), task
                return await _someone_waits_for_the_lock(holder)

            await assert_eventually_async(
                queued, timeout=10, interval=0.01, message="migrate never queued on the lock"
            )
            assert not task.done()
            await holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            assert await task == PACKAGED

    run_in_scratch_schema(database_url, body)


async def _someone_waits_for_the_lock(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    row = await cur.fetchone()
    assert row is not None
    return bool(row[0])


_MIGRATE_ONCE = """
import asyncio, json, sys
from sagaflow.db import migrate
print(json.dumps(asyncio.run(migrate(sys.argv[1]))))
"""


def test_concurrent_processes_apply_each_migration_exactly_once(database_url: str) -> None:
    processes = 4
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    async def one(url: str) -> list[str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATE_ONCE,
            url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        applied: list[str] = json.loads(out)
        return applied

    async def body(url: str) -> None:
        results = await asyncio.gather(*(one(url) for _ in range(processes)))
        assert sorted(name for applied in results for name in applied) == PACKAGED, results
        assert [name for _, name, _ in await _recorded(url)] == PACKAGED

    run_in_scratch_schema(database_url, body)


def test_concurrent_connections_apply_each_migration_exactly_once(database_url: str) -> None:
    """The same race in one process, where the migrators reliably overlap: without the lock,
    this fails with UniqueViolation."""

    async def body(url: str) -> None:
        results = await asyncio.gather(*(migrate(url) for _ in range(4)))
        assert sorted(name for applied in results for name in applied) == PACKAGED, results

    run_in_scratch_schema(database_url, body)
