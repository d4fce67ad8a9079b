"""Writing a batch of events into the read model's tables, in one Postgres transaction.

History and rejections are inserted with ON CONFLICT DO NOTHING; workflow rows are locked,
folded in Python (sagaflow.readmodel.fold) and written back, advancing only on a higher seq.
So projecting the same events again, in any number of batches, leaves every table as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from sagaflow.core.messages import CommandRejected, Event
from sagaflow.readmodel import columns
from sagaflow.readmodel.fold import WorkflowRow, apply_event, body_json, event_time

_ROW_COLUMNS = columns.ROW
_JSON_COLUMNS = columns.JSON_COLUMNS

_UPSERT = (
    f"INSERT INTO sagaflow_workflows ({', '.join(_ROW_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(_ROW_COLUMNS))})"
    " ON CONFLICT (workflow_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _ROW_COLUMNS if c != "workflow_id")
    # The fold already skipped old events; this guard keeps a stale writer (a projector that
    # lost its partition mid-batch) from moving a row backwards.
    + " WHERE sagaflow_workflows.last_seq < EXCLUDED.last_seq"
)


@dataclass(frozen=True)
class Located:
    """A decoded event and where it was read."""

    event: Event
    partition: int
    offset: int


def _row_params(row: WorkflowRow) -> tuple[Any, ...]:
    return tuple(
        Jsonb(getattr(row, c)) if c in _JSON_COLUMNS else getattr(row, c) for c in _ROW_COLUMNS
    )


def _load_rows(conn: psycopg.Connection[Any], ids: Sequence[str]) -> dict[str, WorkflowRow]:
    cur = conn.execute(
        f"SELECT {', '.join(_ROW_COLUMNS)} FROM sagaflow_workflows"
        " WHERE workflow_id = ANY(%s) ORDER BY workflow_id FOR UPDATE",
        (list(ids),),
    )
    rows: dict[str, WorkflowRow] = {}
    for values in cur.fetchall():
        row = WorkflowRow(**dict(zip(_ROW_COLUMNS, values, strict=True)))
        rows[row.workflow_id] = row
    return rows


def store_batch(conn: psycopg.Connection[Any], batch: Sequence[Located]) -> None:
    """Project `batch` (in log order) in one transaction on `conn`."""
    history: list[tuple[Any, ...]] = []
    rejections: list[tuple[Any, ...]] = []
    for item in batch:
        e = item.event
        if isinstance(e.body, CommandRejected):
            r = e.body
            rejections.append(
                (
                    r.command_id,
                    e.workflow_id,
                    r.command_type,
                    r.reason,
                    r.message,
                    event_time(e.recorded_at_ms),
                    item.partition,
                    item.offset,
                )
            )
        else:
            history.append(
                (
                    e.workflow_id,
                    e.seq,
                    e.run_id,
                    type(e.body).__name__,
                    event_time(e.recorded_at_ms),
                    Jsonb(body_json(e.body)),
                    item.partition,
                    item.offset,
                )
            )
    touched = sorted({item.event.workflow_id for item in batch if item.event.seq > 0})
    with conn.transaction():
        if history:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO sagaflow_workflow_history (workflow_id, seq, run_id, type,"
                    " recorded_at, body, kafka_partition, kafka_offset)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (workflow_id, seq) DO NOTHING",
                    history,
                )
        if rejections:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO sagaflow_rejections (command_id, workflow_id, command_type,"
                    " reason, message, recorded_at, kafka_partition, kafka_offset)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    rejections,
                )
        if not touched:
            return
        # Locked in a fixed order so two projectors (during a rebalance) cannot deadlock.
        rows = _load_rows(conn, touched)
        before = {wid: row.last_seq for wid, row in rows.items()}
        for item in batch:
            wid = item.event.workflow_id
            folded = apply_event(rows.get(wid), item.event)
            if folded is not None:
                rows[wid] = folded
        changed = [row for wid, row in rows.items() if row.last_seq > before.get(wid, 0)]
        if changed:
            with conn.cursor() as cur:
                cur.executemany(_UPSERT, [_row_params(row) for row in changed])
