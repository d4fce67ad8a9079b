"""Looking at workflows: show, list and history from the read model (Postgres), or history
straight from the events topic with --from-log."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from sagaflow.cli.eventlog import Logged, workflow_events
from sagaflow.cli.output import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    emit,
    event_line,
    event_to_json,
)
from sagaflow.config import Config
from sagaflow.core.status import LISTED_STATUSES
from sagaflow.db.connect import describe_url
from sagaflow.readmodel import queries

CONNECT_TIMEOUT_S = 5
STATUSES = LISTED_STATUSES

Row = dict[str, Any]
T = TypeVar("T")


def _connect_failed(config: Config, exc: psycopg.Error) -> CliError:
    where = describe_url(config.database_url)
    if isinstance(exc, psycopg.ProgrammingError):
        return CliError(
            f"SAGAFLOW_DATABASE_URL is not a valid Postgres URL ({exc}); use e.g. "
            "postgresql://user:password@host:5432/dbname",
            EXIT_USAGE,
        )
    reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    reason = reason or type(exc).__name__
    return CliError(
        f"cannot reach Postgres at {where} ({reason}); is it running? start the "
        "local stack with `make up` or set SAGAFLOW_DATABASE_URL",
        EXIT_UNAVAILABLE,
    )


async def connect_async(config: Config) -> psycopg.AsyncConnection[Any]:
    """An async connection (for migrations), failing within CONNECT_TIMEOUT_S."""
    try:
        return await psycopg.AsyncConnection.connect(
            config.database_url, connect_timeout=CONNECT_TIMEOUT_S
        )
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise _connect_failed(config, exc) from exc


def read_model(config: Config, query: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run one read-model query (sagaflow.readmodel.queries, the API's own) on a connection of
    its own, or raise a CliError saying how to get one."""
    where = describe_url(config.database_url)

    async def run() -> T:
        async with await connect_async(config) as conn:
            return await query(conn)

    try:
        return asyncio.run(run())
    except psycopg.errors.UndefinedTable as exc:
        raise CliError(
            f"the read model tables are missing in {where} "
            f"({exc.diag.message_primary}); run `sagaflow db migrate` and start the "
            "read model projector",
            EXIT_UNAVAILABLE,
        ) from exc
    except psycopg.OperationalError as exc:
        raise CliError(
            f"Postgres at {where} failed during the query ({exc}); retry once it is healthy",
            EXIT_UNAVAILABLE,
        ) from exc


def _compact(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ts(value: Any) -> str:
    """A timestamp as the CLI prints it (the query module hands out ISO strings)."""
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    if isinstance(when, datetime):
        return when.isoformat(sep=" ", timespec="milliseconds")
    return str(value)


# --------------------------------------------------------------------------- show


def cmd_show(config: Config, args: argparse.Namespace) -> int:
    async def query(conn: psycopg.AsyncConnection[Any]) -> tuple[Row | None, list[Row]]:
        return (
            await queries.get_workflow(conn, args.id),
            await queries.get_rejections(conn, args.id),
        )

    wf, rejections = read_model(config, query)
    if wf is None and not rejections:
        wf, rejections = _catch_up(config, args.id, query)
    emit(args, {"workflow": wf, "rejections": rejections}, _show_text(args.id, wf, rejections))
    return 0


CATCH_UP_S = 10.0
"""How long `show` waits for the read model when the log already knows the workflow."""


def _catch_up(
    config: Config,
    workflow_id: str,
    query: Callable[[psycopg.AsyncConnection[Any]], Awaitable[tuple[Row | None, list[Row]]]],
) -> tuple[Row | None, list[Row]]:
    """The read model has nothing on the workflow. If its events are in the log, the projector
    is behind (right after `watch`, say): wait for it briefly; else it was never started."""
    in_log = any(
        isinstance(item, Logged) for item in workflow_events(config, workflow_id, timeout_s=5)
    )
    if not in_log:
        raise CliError(
            f"no workflow {workflow_id!r}: neither the read model nor the events log knows it; "
            "check the id and SAGAFLOW_TOPIC_PREFIX, or see `sagaflow list`",
            EXIT_FAILED,
        )
    deadline = time.monotonic() + CATCH_UP_S
    while time.monotonic() < deadline:
        time.sleep(0.2)  # polling the read model while the projector catches up
        wf, rejections = read_model(config, query)
        if wf is not None or rejections:
            return wf, rejections
    raise CliError(
        f"workflow {workflow_id!r} is in the events log but the read model has not caught up "
        f"within {CATCH_UP_S:.0f}s (is the orchestrator's projector running?); retry in a "
        f"moment, or read it from Kafka with `sagaflow history {workflow_id} --from-log`",
        EXIT_UNAVAILABLE,
    )


def _show_text(workflow_id: str, wf: Row | None, rejections: list[Row]) -> str:
    lines = [f"workflow  {workflow_id}"]
    if wf is None:
        lines.append("status    never started (only rejected commands are recorded)")
    else:
        lines += [
            f"status    {wf['status']}"
            + ("  (cancel requested)" if wf["cancel_requested"] else ""),
            f"type      {wf['type']} v{wf['version']}",
            f"run       {wf['run_id']}",
            f"created   {_ts(wf['created_at'])}",
            f"updated   {_ts(wf['updated_at'])}  (last seq {wf['last_seq']})",
            f"input     {_compact(wf['input'])}",
        ]
        if wf["current_step"] is not None:
            lines.append(f"step      {_compact(wf['current_step'])}")
        path = wf.get("state_path")
        if path:
            lines.append(
                f"state     {path.get('current') or '-'}"
                f"  (visited {', '.join(path.get('visited', []))}"
                + (f"; failed in {path['failed']}" if path.get("failed") else "")
                + ")"
            )
        if wf["result"] is not None:
            lines.append(f"result    {_compact(wf['result'])}")
        if wf["error"] is not None:
            lines.append(f"error     {_compact(wf['error'])}")
        if wf["parked"] is not None:
            lines.append(f"parked    {_compact(wf['parked'])}")
        for seq, activity in sorted(
            (wf["pending_activities"] or {}).items(), key=lambda kv: int(kv[0])
        ):
            lines.append(f"pending   activity {seq}: {_compact(activity)}")
        for timer in wf["pending_timers"] or []:
            lines.append(f"pending   timer {_compact(timer)}")
        for wait in wf.get("signal_waits") or []:
            lines.append(f"waiting   {wait.get('description') or _compact(wait)}")
        if wf.get("parent"):
            parent = wf["parent"]
            lines.append(f"parent    {parent['workflow_id']} (child step {parent['child_seq']})")
        for child in wf.get("pending_children") or []:
            lines.append(
                f"child     {child['workflow_id']} {child['type']} running "
                f"(step {child['seq']}, on parent close: {child['parent_close_policy']})"
            )
        signals = wf["received_signals"] or []
        if signals:
            names = ", ".join(str(s.get("name")) for s in signals)
            lines.append(f"signals   {len(signals)} received: {names}")
    for r in rejections:
        lines.append(
            f"rejected  {r['command_type']} {r['reason']}: {r['message']} ({_ts(r['recorded_at'])})"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- list


def cmd_list(config: Config, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError(f"--limit {args.limit}: must be at least 1", EXIT_USAGE)

    async def query(conn: psycopg.AsyncConnection[Any]) -> queries.Page:
        return await queries.list_workflows(
            conn, status=args.status, workflow_type=args.type, limit=args.limit, cursor=args.cursor
        )

    try:
        page = read_model(config, query)
    except queries.CursorError as exc:
        raise CliError(
            f"--cursor {args.cursor!r} is not a cursor printed by `sagaflow list`; "
            "copy the 'next page' value exactly",
            EXIT_USAGE,
        ) from exc
    rows, cursor = page.workflows, page.next_cursor
    lines = [f"{'WORKFLOW':40} {'TYPE':16} {'STATUS':16} CREATED"]
    lines += [
        f"{r['workflow_id']:40} {r['type'] + ' v' + str(r['version']):16} "
        f"{r['status']:16} {_ts(r['created_at'])}"
        for r in rows
    ]
    if not rows:
        lines = ["no workflows match" + (" (this page)" if args.cursor else "")]
    if cursor:
        lines.append(f"next page: sagaflow list --cursor {cursor}")
    emit(args, {"workflows": rows, "next_cursor": cursor}, "\n".join(lines))
    return 0


# --------------------------------------------------------------------------- history

HISTORY_LIMIT = 100_000


def cmd_history(config: Config, args: argparse.Namespace) -> int:
    if args.from_log:
        return _history_from_log(config, args)
    rows = read_model(config, lambda conn: queries.get_history(conn, args.id, limit=HISTORY_LIMIT))
    if not rows:
        raise CliError(
            f"the read model has no history for {args.id!r}; read it from Kafka "
            f"with `sagaflow history {args.id} --from-log`",
            EXIT_FAILED,
        )
    emit(
        args,
        {"workflow_id": args.id, "events": rows},
        "\n".join(
            f"{_ts(r['recorded_at'])}  #{r['seq']:<4} {r['type']:22} {_compact(r['body'])}"
            for r in rows
        ),
    )
    return 0


def _history_from_log(config: Config, args: argparse.Namespace) -> int:
    events: list[dict[str, Any]] = []
    lines: list[str] = []
    for item in workflow_events(config, args.id, timeout_s=args.timeout):
        if isinstance(item, Logged):
            events.append(
                {**event_to_json(item.event), "partition": item.partition, "offset": item.offset}
            )
            lines.append(event_line(item.event))
        else:
            events.append(
                {
                    "undecodable": True,
                    "partition": item.partition,
                    "offset": item.offset,
                    "reason": item.reason,
                }
            )
            lines.append(
                f"undecodable record at {config.topics.events}[{item.partition}]"
                f"@{item.offset}: {item.reason}"
            )
    if not events:
        raise CliError(
            f"no events for {args.id!r} in {config.topics.events}; check the id and "
            "SAGAFLOW_TOPIC_PREFIX (or it was never started: see `sagaflow list`)",
            EXIT_FAILED,
        )
    emit(args, {"workflow_id": args.id, "events": events}, "\n".join(lines))
    return 0
