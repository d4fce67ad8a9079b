"""Getting a Postgres connection: pools opened at start-up, and one connection from whatever a
caller holds (a connection, a pool or a URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

Target: TypeAlias = psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any] | str
"""Where to run: an open connection, a pool, or a connection URL."""


class DatabaseUnavailable(RuntimeError):
    """Postgres could not be reached when opening a pool; the message names where and why."""


def describe_url(url: str) -> str:
    """`user@host:port/dbname` of a connection URL, without the password, for messages."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<malformed database URL>"
    return (
        f"{parts.get('user', '')}@{parts.get('host', '')}:{parts.get('port', '5432')}"
        f"/{parts.get('dbname', '')}"
    )


@asynccontextmanager
async def connection(target: Target) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """One connection from `target`: the connection itself, one borrowed from the pool, or a
    new one from the URL (closed on exit)."""
    if isinstance(target, str):
        async with await psycopg.AsyncConnection.connect(target) as conn:
            yield conn
    elif isinstance(target, AsyncConnectionPool):
        async with target.connection() as conn:
            yield conn
    else:
        yield target


@asynccontextmanager
async def open_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "sagaflow",
    connect_timeout_s: float = 10.0,
) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A connection pool that is connected on entry and closed on exit.

    Waits for the first connection so a wrong URL or a database that is down fails at
    start-up with a message naming it, instead of at the first task.
    """
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url, min_size=min_size, max_size=max_size, name=name, open=False
    )
    try:
        await pool.open(wait=True, timeout=connect_timeout_s)
    except PoolTimeout as exc:
        await pool.close()
        raise DatabaseUnavailable(
            f"could not connect to Postgres at {describe_url(url)} within {connect_timeout_s}s; "
            "check SAGAFLOW_DATABASE_URL and that the database is up (make up starts one)"
        ) from exc
    try:
        yield pool
    finally:
        await pool.close()
