"""Reading the read model (for the HTTP API): one workflow, its history, a filtered page.

Pages are ordered newest first by (created_at, workflow_id), a total order that a workflow never
leaves once projected, so a cursor (the last row's key) pages stably while rows are added.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sagaflow.db import Target, connection
from sagaflow.readmodel import columns

_SUMMARY = columns.SUMMARY
_DETAIL = columns.ROW


class CursorError(ValueError):
    """A list cursor that this API did not hand out."""


@dataclass(frozen=True)
class Page:
    workflows: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(created_at: datetime, workflow_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), workflow_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, workflow_id = json.loads(raw)
        return datetime.fromisoformat(created_at), str(workflow_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise CursorError(cursor) from exc


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


async def get_workflow(target: Target, workflow_id: str) -> dict[str, Any] | None:
    async with connection(target) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {', '.join(_DETAIL)} FROM sagaflow_workflows WHERE workflow_id = %s",
            (workflow_id,),
        )
        row = await cur.fetchone()
        return None if row is None else _jsonable(row)


async def state_path(target: Target, workflow_id: str) -> dict[str, Any] | None:
    """Where a state machine execution has been, for marking its graph:
    `{"visited": [name, ...], "current": name | None, "failed": name | None,
    "active": [{"state": name, "scope": branch}, ...]}`; `visited` in the order first entered,
    `current` the newest state entered and not yet left (None once the run closed), `failed` the
    innermost state whose uncaught error is failing the run. None when the workflow is unknown
    or records no states (a code-first workflow, or an execution started before state
    transitions were recorded)."""
    async with connection(target) as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT state_path FROM sagaflow_workflows WHERE workflow_id = %s", (workflow_id,)
        )
        row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    path = row[0]
    return {key: path[key] for key in ("visited", "current", "failed", "active")}


async def get_rejections(target: Target, workflow_id: str) -> list[dict[str, Any]]:
    async with connection(target) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT command_id, command_type, reason, message, recorded_at"
            " FROM sagaflow_rejections WHERE workflow_id = %s ORDER BY recorded_at, id",
            (workflow_id,),
        )
        return [_jsonable(r) for r in await cur.fetchall()]


async def get_start_request(target: Target, workflow_id: str) -> dict[str, Any] | None:
    """A start the API has sent that the read model may not show yet (see record_start_request)."""
    async with connection(target) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT workflow_id, type, version, input, command_id, requested_at"
            " FROM sagaflow_start_requests WHERE workflow_id = %s",
            (workflow_id,),
        )
        row = await cur.fetchone()
        return None if row is None else _jsonable(row)


async def record_start_request(
    target: Target,
    workflow_id: str,
    workflow_type: str,
    version: int | None,
    input: Any,
    command_id: str,
) -> None:
    """Note a start the API has *sent* (never before: the engine alone decides whether a start
    happens), so GET can answer "accepted" until the projector has caught up and a repeat with
    other content can be answered 409 at once. The first start sent for an id is kept."""
    async with connection(target) as conn:
        await conn.execute(
            "INSERT INTO sagaflow_start_requests (workflow_id, type, version, input, command_id)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (workflow_id) DO NOTHING",
            (workflow_id, workflow_type, version, Jsonb(input), command_id),
        )


async def get_history(
    target: Target, workflow_id: str, *, after_seq: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    async with connection(target) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT seq, run_id, type, recorded_at, body, kafka_partition, kafka_offset"
            " FROM sagaflow_workflow_history WHERE workflow_id = %s AND seq > %s"
            " ORDER BY seq LIMIT %s",
            (workflow_id, after_seq, limit),
        )
        return [_jsonable(r) for r in await cur.fetchall()]


@dataclass(frozen=True)
class Filters:
    """What a list of workflows is narrowed to; every field optional."""

    status: str | None = None
    workflow_type: str | None = None
    version: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    id_prefix: str | None = None
    """Workflow ids starting with this text (an exact id is its own prefix)."""

    def where(self, *, with_status: bool = True) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if with_status and self.status is not None:
            where.append("status = %s")
            params.append(self.status)
        if self.workflow_type is not None:
            where.append("type = %s")
            params.append(self.workflow_type)
        if self.version is not None:
            where.append("version = %s")
            params.append(self.version)
        if self.created_from is not None:
            where.append("created_at >= %s")
            params.append(self.created_from)
        if self.created_to is not None:
            where.append("created_at < %s")
            params.append(self.created_to)
        if self.id_prefix:
            # LIKE with the wildcards escaped, so an id containing % or _ matches literally.
            escaped = self.id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("workflow_id LIKE %s")
            params.append(escaped + "%")
        return where, params


async def count_by_status(target: Target, filters: Filters = Filters()) -> dict[str, int]:
    """{status: workflows} under `filters` (its status ignored, so every count shows)."""
    where, params = filters.where(with_status=False)
    sql = (
        "SELECT status, count(*) FROM sagaflow_workflows"
        f"{' WHERE ' + ' AND '.join(where) if where else ''} GROUP BY status"
    )
    async with connection(target) as conn, conn.cursor() as cur:
        await cur.execute(sql, params)
        return {status: int(n) for status, n in await cur.fetchall()}


async def get_runs(target: Target, workflow_id: str) -> list[dict[str, Any]]:
    """The workflow's runs (continue-as-new chain), oldest first, each with where its events
    sit in the events topic: {run_id, first_seq, last_seq, partition, first_offset,
    last_offset, started_at}."""
    async with connection(target) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT run_id, min(seq) AS first_seq, max(seq) AS last_seq,"
            " min(kafka_partition) AS partition, min(kafka_offset) AS first_offset,"
            " max(kafka_offset) AS last_offset, min(recorded_at) AS started_at"
            " FROM sagaflow_workflow_history WHERE workflow_id = %s"
            " GROUP BY run_id ORDER BY min(seq)",
            (workflow_id,),
        )
        return [_jsonable(r) for r in await cur.fetchall()]


async def list_workflows(
    target: Target,
    *,
    status: str | None = None,
    workflow_type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    filters: Filters | None = None,
) -> Page:
    if filters is None:
        filters = Filters(status=status, workflow_type=workflow_type)
    where, params = filters.where()
    if cursor is not None:
        created_at, workflow_id = decode_cursor(cursor)
        where.append("(created_at, workflow_id) < (%s, %s)")
        params += [created_at, workflow_id]
    sql = (
        f"SELECT {', '.join(_SUMMARY)} FROM sagaflow_workflows"
        f"{' WHERE ' + ' AND '.join(where) if where else ''}"
        " ORDER BY created_at DESC, workflow_id DESC LIMIT %s"
    )
    params.append(limit + 1)  # one more than asked tells whether there is a next page
    async with connection(target) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(rows[-1]["created_at"], rows[-1]["workflow_id"]) if more and rows else None
    )
    return Page([_jsonable(r) for r in rows], next_cursor)


async def ping(target: Target) -> None:
    """Raises psycopg.Error when Postgres does not answer."""
    async with connection(target) as conn:
        await conn.execute("SELECT 1")
