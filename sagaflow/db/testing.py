"""Test support: a throwaway schema per test, so Postgres tests never see each other's rows.

A schema rather than a database because it needs only the rights the application's own user
already has (CREATE on its database), not CREATEDB. Advisory locks are per database, so tests
that take the migration lock still serialise with each other; that only costs time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg
from psycopg import sql

T = TypeVar("T")


@asynccontextmanager
async def scratch_schema(url: str, prefix: str = "t") -> AsyncIterator[str]:
    """Create an empty schema, yield a connection string whose search_path is that schema
    only, and drop the schema with everything in it on exit."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield psycopg.conninfo.make_conninfo(url, options=f"-c search_path={schema}")
        finally:
            await admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def run_in_scratch_schema(
    url: str, body: Callable[[str], Awaitable[T]], *, timeout_s: float = 60.0
) -> T:
    """Run `body(scratch_url)` on a fresh event loop, bounded by `timeout_s`, in a scratch
    schema dropped afterwards. For synchronous test functions (no asyncio plugin needed)."""

    async def main() -> T:
        async with scratch_schema(url) as scratch:
            return await asyncio.wait_for(body(scratch), timeout_s)

    return asyncio.run(main())
