"""Test support: a throwaway schema per test, so Postgres tests never see each other's rows.

A schema rather than a database because it needs only the rights the application's own user
already has (CREATE on its database), not CREATEDB.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql


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
