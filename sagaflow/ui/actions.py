"""A workflow's actions (signal, cancel, terminate, query): sent through the client as the API
sends them, then back to the workflow's page, which shows the event that records the action or
its refusal (a query records nothing: the page shows its answer)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from sagaflow.client import DeliveryError, ReplyError, ReplyTimeoutError, reply_value
from sagaflow.core.messages import CancelRequested, SignalReceived, WorkflowTerminated
from sagaflow.readmodel import queries
from sagaflow.ui import logview
from sagaflow.ui.common import CLIENT, POOL, PREFIX, BadInput, form, see_other


async def _last_seq(request: web.Request, workflow_id: str) -> int:
    """The newest event's seq before an action: its resulting event comes after it."""
    workflow = await queries.get_workflow(request.app[POOL], workflow_id)
    return int(workflow["last_seq"]) if workflow else 0


def _back(
    request: web.Request, workflow_id: str, sent: str, command_id: str, after: int
) -> web.Response:
    query = urlencode({"sent": sent, "command": command_id, "after": after})
    return see_other(f"{request.app[PREFIX]}/workflows/{quote(workflow_id)}?{query}")


def action_result(
    request: web.Request, view: logview.LogView, rejections: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """What became of the action just sent (named by the query string `_back` made): the event
    that records it, the engine's refusal, or nothing yet."""
    command_id = request.query.get("command", "")
    after_raw = request.query.get("after", "")
    if not command_id or not after_raw.isdigit():
        return None
    for r in rejections:
        if r["command_id"] == command_id:
            return {"refused": f"{r['reason']}: {r['message']}", "entry": None}
    after = int(after_raw)
    for event, entry in zip(view.events, view.timeline, strict=True):
        body = event.body
        if event.seq <= after:
            continue
        if command_id.startswith("ui-signal:") and isinstance(body, SignalReceived):
            if body.command_id == command_id:
                return {"refused": None, "entry": entry}
        elif (command_id.startswith("ui-cancel:") and isinstance(body, CancelRequested)) or (
            command_id.startswith("ui-terminate:") and isinstance(body, WorkflowTerminated)
        ):
            return {"refused": None, "entry": entry}
    return {"refused": None, "entry": None}


async def signal_action(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    fields = await form(request)
    name = str(fields.get("name", "")).strip()
    if not name:
        raise BadInput("a signal needs a name, e.g. approve")
    raw = str(fields.get("payload", "")).strip() or "null"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise BadInput(f'the payload is not JSON ({exc}); e.g. {{"approved": true}}') from exc
    command_id = f"ui-signal:{workflow_id}:{name}:{time.time_ns()}"
    after = await _last_seq(request, workflow_id)
    try:
        await asyncio.to_thread(request.app[CLIENT].signal, workflow_id, name, value, command_id)
    except DeliveryError as exc:
        raise BadInput(str(exc)) from exc
    return _back(request, workflow_id, f"signal {name}", command_id, after)


async def cancel_action(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    fields = await form(request)
    reason = str(fields.get("reason", "")).strip() or "cancelled from the UI"
    command_id = f"ui-cancel:{workflow_id}:{time.time_ns()}"
    after = await _last_seq(request, workflow_id)
    try:
        await asyncio.to_thread(request.app[CLIENT].cancel, workflow_id, reason, command_id)
    except DeliveryError as exc:
        raise BadInput(str(exc)) from exc
    return _back(request, workflow_id, "cancel", command_id, after)


async def terminate_action(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    fields = await form(request)
    reason = str(fields.get("reason", "")).strip()
    if not reason:
        raise BadInput("a terminate needs a reason: it is recorded in the workflow's history")
    by = str(fields.get("by", "")).strip() or "ui"
    command_id = f"ui-terminate:{workflow_id}:{time.time_ns()}"
    after = await _last_seq(request, workflow_id)
    try:
        await asyncio.to_thread(request.app[CLIENT].terminate, workflow_id, reason, by, command_id)
    except DeliveryError as exc:
        raise BadInput(str(exc)) from exc
    return _back(request, workflow_id, "terminate", command_id, after)


QUERY_TIMEOUT_S = 10.0
ANSWER_SHOWN = 4_000
"""Characters of a query's answer carried back to the page (the CLI and API give all of it)."""


def _json_field(fields: dict[str, Any], name: str, example: str) -> Any:
    raw = str(fields.get(name, "")).strip() or "null"
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadInput(f"the {name} are not JSON ({exc}); e.g. {example}") from exc


async def query_action(request: web.Request) -> web.Response:
    """Ask the orchestrator that owns the workflow; the page shows the answer or why none came."""
    workflow_id = request.match_info["workflow_id"]
    fields = await form(request)
    name = str(fields.get("name", "")).strip()
    if not name:
        raise BadInput("a query needs a name: one the workflow type registers")
    args = _json_field(fields, "args", '{"verbose": true}')
    client = request.app[CLIENT]
    outcome: dict[str, str]
    try:
        reply = await asyncio.to_thread(
            client.query, workflow_id, name, args, timeout_s=QUERY_TIMEOUT_S
        )
        answer = json.dumps(reply_value(reply), indent=2, default=str)
        outcome = {"answer": answer[:ANSWER_SHOWN]}
    except (ReplyError, ReplyTimeoutError) as exc:
        outcome = {"query_error": str(exc)}
    except DeliveryError as exc:
        raise BadInput(str(exc)) from exc
    query = urlencode({"queried": name, **outcome})
    return see_other(f"{request.app[PREFIX]}/workflows/{quote(workflow_id)}?{query}#query-h")


def query_result(request: web.Request) -> dict[str, str] | None:
    """The answer of the query just asked (carried in the query string by `query_action`)."""
    name = request.query.get("queried", "")
    if not name:
        return None
    return {
        "name": name,
        "answer": request.query.get("answer", ""),
        "error": request.query.get("query_error", ""),
    }
