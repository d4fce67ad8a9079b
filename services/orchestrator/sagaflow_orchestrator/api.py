"""The workflow API: start, signal and cancel workflows; read their status and history.

Writes are commands produced to Kafka (the orchestrator decides, the events topic records);
reads come from the read model in Postgres (sagaflow.readmodel). Every error answer is
`{"error": "<what happened; what to do>", "field"?: "<offending field>"}`; unexpected failures
are a 500 carrying only a request id (the traceback goes to the server log).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
from aiohttp import web
from aiohttp.typedefs import Middleware
from confluent_kafka import Producer
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from sagaflow.client import Client, DeliveryError, payload
from sagaflow.config import Config
from sagaflow.core.messages import CancelWorkflow, SignalWorkflow, StartWorkflow
from sagaflow.core.registry import Registry
from sagaflow.db import describe_url, migrate
from sagaflow.inputs import InputError, check_input
from sagaflow.kafka.clients import command_producer
from sagaflow.readmodel import queries
from sagaflow.readmodel.fold import CLOSED_STATUSES, STATUSES
from sagaflow.telemetry import Telemetry, command_headers

log = logging.getLogger(__name__)
access_log = logging.getLogger("sagaflow_orchestrator.access")

API_CONFIG = web.AppKey("api_config", Config)
REGISTRY = web.AppKey("registry", Registry)
POOL = web.AppKey("read_model_pool", AsyncConnectionPool)
PRODUCER = web.AppKey("command_producer", Producer)
CLIENT = web.AppKey("command_client", Client)
TELEMETRY = web.AppKey("telemetry", Telemetry)
REQUEST_ID = web.RequestKey("request_id", str)

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
SEND_TIMEOUT_S = 10.0
_START_KEYS = frozenset({"type", "id", "input", "version"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than success; rendered as {"error": message, "field": field}."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_response(
    status: int, message: str, *, field: str | None = None, request_id: str | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    if request_id is not None:
        body["request_id"] = request_id
    return web.json_response(body, status=status)


# --------------------------------------------------------------------------- middlewares


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns every failure into a JSON body; the only place that catches broadly."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.message, field=exc.field)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        log.warning("request %s: read model unavailable: %s", request_id, exc)
        response = error_response(
            503,
            "the read model database is unavailable; retry in a few "
            "seconds, and check /readyz if it persists",
            request_id=request_id,
        )
    except DeliveryError as exc:
        log.warning("request %s: %s", request_id, exc)
        response = error_response(
            503,
            "Kafka did not accept the command, so nothing was sent; "
            "retry in a few seconds (it is safe to repeat)",
            request_id=request_id,
        )
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[API_CONFIG].max_payload_bytes
        response = error_response(
            413,
            f"request body is too large (payloads are limited to "
            f"{limit} bytes, SAGAFLOW_MAX_PAYLOAD_BYTES); send less",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, _http_error_message(exc))
    except Exception:  # the one broad catch: no traceback may reach a client
        log.exception("request %s %s %s failed", request_id, request.method, request.path)
        response = error_response(
            500,
            "internal error; retry later, and report the request_id if it keeps failing",
            request_id=request_id,
        )
    response.headers["X-Request-Id"] = request_id
    return response


def _http_error_message(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "no such endpoint; GET /openapi.json lists the API"
    if exc.status == 405:
        return "method not allowed on this path; GET /openapi.json lists the methods"
    return f"{exc.reason}; GET /openapi.json describes the API"


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path, status, duration. Never bodies or query values."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        access_log.info(
            "%s %s %d %.1fms",
            request.method,
            request.path,
            status,
            (time.perf_counter() - started) * 1000,
        )


def auth_middleware(token: str) -> Middleware:
    """Bearer auth on /workflows*; health, readiness, metrics and the spec stay open for
    probes and scrapers."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and request.path.startswith("/workflows"):
            given = request.headers.get("Authorization")
            if not given:
                response = error_response(
                    401,
                    "missing bearer token; send 'Authorization: "
                    "Bearer <token>' with the SAGAFLOW_API_TOKEN value",
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            if not hmac.compare_digest(given.encode(), expected):
                return error_response(
                    403,
                    "the bearer token is not valid for this API; use "
                    "the token configured as SAGAFLOW_API_TOKEN",
                )
        return await handler(request)

    return middleware


# --------------------------------------------------------------------------- resources


async def api_resources(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the read model pool and the command producer, for the app's lifetime.

    The pool is opened without waiting for Postgres: the orchestrator must come up (and say
    not-ready on /readyz) even while the database is down.
    """
    config = app[API_CONFIG]
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        config.database_url, min_size=1, max_size=10, name="sagaflow-api", open=False, timeout=5.0
    )
    await pool.open(wait=False)
    try:
        await migrate(pool)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        # The projector migrates too when it starts; until one of them has, reads answer 503.
        log.warning(
            "api: could not migrate the read model at %s (%s); workflow reads answer "
            "503 until Postgres is reachable",
            describe_url(config.database_url),
            exc,
        )
    producer = command_producer(config, **{"client.id": "sagaflow-api"})
    app[POOL] = pool
    app[PRODUCER] = producer
    telemetry = app.get(TELEMETRY)
    # Starts, signals and cancels sent through the API open the workflow's trace.
    headers = command_headers(telemetry, config.topics.commands) if telemetry else None
    app[CLIENT] = Client(config, producer=producer, headers=headers)
    try:
        yield
    finally:
        await asyncio.to_thread(producer.flush, 10)
        # Destroy it now, not at garbage collection: a dangling client keeps reconnecting.
        await asyncio.to_thread(producer.close)
        await pool.close()


# --------------------------------------------------------------------------- helpers


async def _json_body(request: web.Request, *, empty: Any = None) -> Any:
    max_bytes = request.app[API_CONFIG].max_payload_bytes
    if request.content_length is not None and request.content_length > _body_limit(max_bytes):
        raise ApiError(
            413,
            f"request body is {request.content_length} bytes, over the "
            f"{_body_limit(max_bytes)} byte limit; send a smaller payload",
        )
    raw = await request.read()
    if not raw.strip():
        return empty
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(
            400,
            f"the body is not valid JSON ({exc}); send a JSON document with "
            "Content-Type: application/json",
            field="body",
        ) from None


def _body_limit(max_payload_bytes: int) -> int:
    # The payload limit is on the input itself; the envelope ({type, id, ...}) gets headroom.
    return max_payload_bytes + 16 * 1024


def _check_size(request: web.Request, value: Any, field: str) -> bytes:
    encoded = payload(value)
    limit = request.app[API_CONFIG].max_payload_bytes
    if len(encoded) > limit:
        raise ApiError(
            413,
            f"{field} is {len(encoded)} bytes as JSON, over the limit of "
            f"{limit} (SAGAFLOW_MAX_PAYLOAD_BYTES); store large data elsewhere and "
            "pass a reference",
            field=field,
        )
    return encoded


async def _send(
    request: web.Request, command: StartWorkflow | SignalWorkflow | CancelWorkflow
) -> None:
    client = request.app[CLIENT]
    await asyncio.to_thread(client.send, command, SEND_TIMEOUT_S)


async def _known(request: web.Request, workflow_id: str) -> dict[str, Any]:
    """The workflow row, or a stand-in when only the API's start request is known yet."""
    pool = request.app[POOL]
    row = await queries.get_workflow(pool, workflow_id)
    if row is not None:
        return row
    start = await queries.get_start_request(pool, workflow_id)
    if start is None:
        raise ApiError(
            404,
            f"no workflow with id {workflow_id!r}; check the id, or start it with POST /workflows",
        )
    return {"workflow_id": workflow_id, "status": "accepted"}


def _same_input(a: Any, b: Any) -> bool:
    return payload(a) == payload(b)


# --------------------------------------------------------------------------- handlers


async def start_workflow(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(
            400, 'the body must be a JSON object {"type", "input", "id"?, "version"?}', field="body"
        )
    for key in body:
        if key not in _START_KEYS:
            raise ApiError(400, f"unknown field {key!r}; allowed: {sorted(_START_KEYS)}", field=key)
    registry = request.app[REGISTRY]
    wtype = body.get("type")
    if not isinstance(wtype, str) or not registry.has_workflow_type(wtype):
        raise ApiError(
            400,
            f"unknown workflow type {wtype!r}; use one of {sorted(registry.workflows)}",
            field="type",
        )
    version = body.get("version")
    if version is not None and (
        isinstance(version, bool)
        or not isinstance(version, int)
        or version not in registry.workflows[wtype]
    ):
        raise ApiError(
            400,
            f"workflow {wtype!r} has no version {version!r}; use one of "
            f"{sorted(registry.workflows[wtype])} or leave it out for the newest",
            field="version",
        )
    workflow_id = body.get("id")
    if workflow_id is None:
        workflow_id = f"wf-{uuid.uuid4().hex}"
    elif (
        not isinstance(workflow_id, str)
        or not 0 < len(workflow_id) <= 200
        or not workflow_id.isprintable()
        or "/" in workflow_id
    ):
        raise ApiError(
            400,
            "id must be 1 to 200 printable characters without '/'; choose "
            "another id or leave it out to get a generated one",
            field="id",
        )
    value = body.get("input")
    try:
        check_input(registry.get_workflow(wtype, version).fn, value)
    except InputError as exc:
        raise ApiError(
            400, f"{exc}; fix the input to match workflow {wtype!r}", field=exc.field
        ) from None
    encoded = _check_size(request, value, "input")
    pool = request.app[POOL]
    conflict = (
        f"workflow id {workflow_id!r} was already started with a different type, "
        "version or input; choose a new id, or repeat the original request exactly"
    )
    existing = await queries.get_workflow(pool, workflow_id)
    if existing is not None:
        if (
            existing["type"] != wtype
            or not _same_input(existing["input"], value)
            or (version is not None and existing["version"] != version)
        ):
            raise ApiError(409, conflict, field="id")
        return web.json_response({"workflow_id": workflow_id}, status=202)
    command_id = f"start:{workflow_id}"
    earlier = await queries.record_start_request(
        pool, workflow_id, wtype, version, value, command_id
    )
    if earlier is not None:
        if (
            earlier["type"] != wtype
            or earlier["version"] != version
            or not _same_input(earlier["input"], value)
        ):
            raise ApiError(409, conflict, field="id")
        # Accepted before and sent (a failed send removes the request), so the orchestrator
        # has it: the repeat is answered without a second command.
        return web.json_response({"workflow_id": workflow_id}, status=202)
    try:
        await _send(request, StartWorkflow(workflow_id, wtype, encoded, version, command_id))
    except DeliveryError:
        async with pool.connection() as conn:
            await conn.execute(
                "DELETE FROM sagaflow_start_requests WHERE workflow_id = %s", (workflow_id,)
            )
        raise
    return web.json_response({"workflow_id": workflow_id}, status=202)


async def signal_workflow(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    name = request.match_info["name"]
    value = await _json_body(request)
    encoded = _check_size(request, value, "body")
    row = await _known(request, workflow_id)
    _refuse_closed(row, "signal")
    await _send(request, SignalWorkflow(workflow_id, name, encoded, f"api:{request[REQUEST_ID]}"))
    return web.json_response({"workflow_id": workflow_id, "signal": name}, status=202)


async def answer_task_token(request: web.Request) -> web.Response:
    """SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat for a state machine's
    `.waitForTaskToken` Task: the token names the workflow and the signal it waits on."""
    from sagaflow.asl import tokens

    outcome = request.match_info["outcome"]
    body = await _json_body(request)
    if outcome not in ("success", "failure", "heartbeat") or not isinstance(body, dict):
        raise ApiError(
            400,
            'POST /task-tokens/success|failure|heartbeat with {"token", "output"} or '
            '{"token", "error", "cause"}',
            field="body",
        )
    try:
        token = tokens.TaskToken.decode(str(body.get("token", "")))
    except tokens.TaskTokenError as exc:
        raise ApiError(400, str(exc), field="token") from None
    answer = (
        tokens.success(body.get("output"))
        if outcome == "success"
        else tokens.failure(body.get("error"), body.get("cause"))
        if outcome == "failure"
        else tokens.heartbeat()
    )
    encoded = _check_size(request, answer, "body")
    row = await _known(request, token.workflow_id)
    _refuse_closed(row, "task token answer")
    command = SignalWorkflow(token.workflow_id, token.signal, encoded, f"api:{request[REQUEST_ID]}")
    await _send(request, command)
    reply = {"workflow_id": token.workflow_id, "signal": token.signal}
    return web.json_response(reply, status=202)


async def cancel_workflow(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    body = await _json_body(request, empty={})
    if not isinstance(body, dict) or not isinstance(body.get("reason", ""), str):
        raise ApiError(400, 'the body must be empty or {"reason": "<text>"}', field="reason")
    reason = body.get("reason", "")
    _check_size(request, reason, "reason")
    row = await _known(request, workflow_id)
    _refuse_closed(row, "cancel")
    await _send(request, CancelWorkflow(workflow_id, reason, f"api:{request[REQUEST_ID]}"))
    return web.json_response({"workflow_id": workflow_id}, status=202)


def _refuse_closed(row: dict[str, Any], what: str) -> None:
    if row["status"] in CLOSED_STATUSES:
        raise ApiError(
            409,
            f"workflow {row['workflow_id']!r} is {row['status']}; a {what} only "
            "reaches a running workflow. Start a new workflow instead",
            field="workflow_id",
        )


async def get_workflow(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    pool = request.app[POOL]
    row = await queries.get_workflow(pool, workflow_id)
    rejections = await queries.get_rejections(pool, workflow_id)
    if row is None:
        start = await queries.get_start_request(pool, workflow_id)
        if start is None and not rejections:
            raise ApiError(
                404,
                f"no workflow with id {workflow_id!r}; check the id, or list "
                "workflows with GET /workflows",
            )
        rejected = any(r["command_type"] == "StartWorkflow" for r in rejections)
        row = {
            "workflow_id": workflow_id,
            "status": "rejected" if rejected else "accepted",
            "type": start["type"] if start else None,
            "version": start["version"] if start else None,
            "input": start["input"] if start else None,
        }
    return web.json_response({**row, "rejections": rejections})


async def get_history(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    after_seq = _int_param(request, "after_seq", 0, minimum=0)
    limit = _int_param(request, "limit", 1000, minimum=1, maximum=1000)
    await _known(request, workflow_id)
    events = await queries.get_history(
        request.app[POOL], workflow_id, after_seq=after_seq, limit=limit
    )
    next_after = events[-1]["seq"] if len(events) == limit else None
    return web.json_response(
        {"workflow_id": workflow_id, "events": events, "next_after_seq": next_after}
    )


async def list_workflows(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"status {status!r} is not one of {list(STATUSES)}", field="status")
    limit = _int_param(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    try:
        page = await queries.list_workflows(
            request.app[POOL],
            status=status,
            workflow_type=request.query.get("type") or None,
            limit=limit,
            cursor=request.query.get("cursor") or None,
        )
    except queries.CursorError:
        raise ApiError(
            400,
            "cursor is not one this API handed out; pass next_cursor from the "
            "previous page unchanged, or leave it out for the first page",
            field="cursor",
        ) from None
    return web.json_response({"workflows": page.workflows, "next_cursor": page.next_cursor})


def _int_param(
    request: web.Request, name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(400, f"{name} must be a whole number {bounds}, got {raw!r}", field=name)
    return value


def add_routes(app: web.Application) -> None:
    app.router.add_post("/workflows", start_workflow)
    app.router.add_get("/workflows", list_workflows)
    app.router.add_get("/workflows/{workflow_id}", get_workflow)
    app.router.add_get("/workflows/{workflow_id}/history", get_history)
    app.router.add_post("/workflows/{workflow_id}/signals/{name}", signal_workflow)
    app.router.add_post("/workflows/{workflow_id}/cancel", cancel_workflow)
    app.router.add_post("/task-tokens/{outcome}", answer_task_token)
