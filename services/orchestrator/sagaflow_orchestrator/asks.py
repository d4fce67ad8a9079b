"""The API's queries and updates: ask the orchestrator that owns a workflow and wait.

    GET  /workflows/{id}/queries/{name}?args=<JSON>     (or ?key=value..., or a JSON body)
    POST /workflows/{id}/updates/{name}   {"args": <JSON>, "update_id"?: "<id>"}

The request is a command on the commands topic keyed by the workflow id; the answer comes back
on the replies topic keyed by a request id this API chooses (sagaflow.client.Client.ask). 200
with the result; 404 for an unknown workflow, query or update (the message names it); 409 for
a workflow an update cannot reach; 422 when the handler failed or the validator rejected the
update (nothing recorded); 504 when no answer came in time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web

from sagaflow.client import ReplyTimeoutError
from sagaflow.core import payload
from sagaflow.core.interactions import REJECTIONS
from sagaflow.core.messages import QueryWorkflow, ReplyToCaller, UpdateWorkflow
from sagaflow.kafka.logread import LogReadError
from sagaflow_orchestrator import api

QUERY_TIMEOUT_S = 10.0
UPDATE_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 120.0
_UPDATE_KEYS = frozenset({"args", "update_id"})
_STATUS_OF_REASON = {
    "unknown_query": 404,
    "unknown_update": 404,
    "workflow_not_found": 404,
    "workflow_closed": 409,
    "workflow_parked": 409,
    "workflow_quarantined": 409,
    "workflow_error": 409,
    "payload_too_large": 413,
    "invalid_payload": 400,
}


async def query_workflow(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    name = request.match_info["name"]
    args = await _query_args(request)
    encoded = api._check_size(request, args, "args")
    timeout = _timeout(request, QUERY_TIMEOUT_S)
    request_id = uuid.uuid4().hex
    command = QueryWorkflow(workflow_id, name, encoded, request_id, request_id)
    return _respond(command, await _ask(request, command, timeout))


async def update_workflow(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    name = request.match_info["name"]
    body = await api._json_body(request, empty={})
    if not isinstance(body, dict) or not set(body) <= _UPDATE_KEYS:
        raise api.ApiError(
            400, 'the body must be a JSON object {"args"?: <JSON>, "update_id"?: "<id>"}', "body"
        )
    update_id = body.get("update_id", uuid.uuid4().hex)
    if not isinstance(update_id, str) or not 0 < len(update_id) <= 200:
        raise api.ApiError(
            400,
            "update_id must be 1 to 200 characters; repeat an update with the same id to get "
            "its first result, or leave it out",
            "update_id",
        )
    encoded = api._check_size(request, body.get("args"), "args")
    timeout = _timeout(request, UPDATE_TIMEOUT_S)
    request_id = uuid.uuid4().hex
    command = UpdateWorkflow(workflow_id, name, encoded, update_id, request_id, request_id)
    return _respond(command, await _ask(request, command, timeout))


async def _query_args(request: web.Request) -> Any:
    """?args=<JSON> wins; else a JSON body; else the other query parameters as an object of
    strings (null when there are none)."""
    raw = request.query.get("args")
    if raw is not None:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise api.ApiError(
                400, f"args is not JSON ({exc}); pass ?args=<JSON>, URL-encoded", "args"
            ) from None
    if request.can_read_body:
        return await api._json_body(request, root="body")
    rest = {k: v for k, v in request.query.items() if k != "timeout_s"}
    return rest or None


def _timeout(request: web.Request, default: float) -> float:
    raw = request.query.get("timeout_s")
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT_S:
        raise api.ApiError(
            400,
            f"timeout_s must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}",
            "timeout_s",
        )
    return value


async def _ask(
    request: web.Request, command: QueryWorkflow | UpdateWorkflow, timeout: float
) -> ReplyToCaller:
    client = request.app[api.CLIENT]
    try:
        return await asyncio.to_thread(client.ask, command, timeout)
    except ReplyTimeoutError as exc:
        raise api.ApiError(504, f"{exc}; or raise ?timeout_s") from None
    except LogReadError as exc:
        raise api.ApiError(503, f"{exc}") from None


def _respond(command: QueryWorkflow | UpdateWorkflow, reply: ReplyToCaller) -> web.Response:
    kind = "query" if isinstance(command, QueryWorkflow) else "update"
    body: dict[str, Any] = {"workflow_id": command.workflow_id, kind: command.name}
    if isinstance(command, UpdateWorkflow):
        body["update_id"] = command.update_id
    if reply.ok:
        body["result"] = payload.loads(reply.result)
        return web.json_response(body)
    rejected = reply.error_type in REJECTIONS
    status = _STATUS_OF_REASON.get(reply.error_type, 422) if rejected else 422
    outcome = "rejected" if rejected else "failed"
    what = f"{kind} {command.name!r} of workflow {command.workflow_id!r}"
    body["error"] = f"{what} {outcome} ({reply.error_type}): {reply.message}"
    body["reason"] = reply.error_type
    body["outcome"] = outcome
    return web.json_response(body, status=status)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/workflows/{workflow_id}/queries/{name}", query_workflow)
    app.router.add_post("/workflows/{workflow_id}/updates/{name}", update_workflow)
