"""The workflow API: start, signal and cancel workflows; read their status and history.

Writes are commands produced to Kafka (the orchestrator decides, the events topic records);
reads come from the read model in Postgres (sagaflow.readmodel). Every error answer is
`{"error": "<what happened; what to do>", "field"?: "<offending field>"}`; unexpected failures
are a 500 carrying only a request id (the traceback goes to the server log).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
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
from sagaflow.core.identity import start_command_id
from sagaflow.core.messages import (
    CancelWorkflow,
    SignalWorkflow,
    StartWorkflow,
    TerminateWorkflow,
)
from sagaflow.core.registry import Registry
from sagaflow.core.status import CLOSED_STATUSES
from sagaflow.db import describe_url, migrate
from sagaflow.faults import fault_point
from sagaflow.inputs import InputError, check_input, check_json, check_text
from sagaflow.kafka.clients import command_producer
from sagaflow.readmodel import queries
from sagaflow.readmodel.fold import STATUSES
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
MAX_SEQ = 2**63 - 1  # a Postgres bigint
SEND_TIMEOUT_S = 10.0
_START_KEYS = frozenset({"type", "id", "input", "version", "execution_timeout_s", "run_timeout_s"})

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
    except psycopg.DataError as exc:
        # The handlers refuse what Postgres cannot take before querying; this is the net under
        # them, so a value that slipped through is the client's 400, not a 500.
        log.warning("request %s: Postgres refused a value of the request: %s", request_id, exc)
        response = error_response(
            400,
            f"a value in the request cannot be stored or searched ({exc}); remove NUL "
            "characters and out-of-range numbers and retry",
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
        if "Allow" in exc.headers:
            # A 405 must say which methods the path has (RFC 9110).
            response.headers["Allow"] = exc.headers["Allow"]
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
            if given and not given.isascii():
                # aiohttp keeps undecodable header bytes as surrogates; no token contains them.
                return error_response(
                    400,
                    "the Authorization header has non-ASCII characters; send 'Authorization: "
                    "Bearer <token>' with the SAGAFLOW_API_TOKEN value",
                    field="Authorization",
                )
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


@web.middleware
async def parameters_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Path and query parameters are text that reaches Postgres and Kafka: a NUL or a lone
    surrogate in one is a 400 naming it, before any handler runs."""
    for name, value in [*request.match_info.items(), *request.query.items()]:
        try:
            check_text(value, name)
        except InputError as exc:
            raise ApiError(400, f"{exc}; fix the {name} parameter", field=name) from None
    return await handler(request)


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


async def _json_body(request: web.Request, *, empty: Any = None, root: str = "") -> Any:
    """The request's JSON body, checked to be storable (see sagaflow.inputs.check_json).

    `root` names the body in errors: "" when its keys are the fields (start, cancel), else
    e.g. "body" (a signal's payload).
    """
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
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ApiError(
            400, "the body is nested too deeply to read; flatten the document", field="body"
        ) from None
    except ValueError as exc:
        raise ApiError(
            400,
            f"the body is not valid JSON ({exc}); send a JSON document with "
            "Content-Type: application/json",
            field="body",
        ) from None
    try:
        check_json(value, root)
    except InputError as exc:
        raise ApiError(400, f"{exc}; fix the value and retry", field=exc.field) from None
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of the range of a JSON number")
    return value


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
    request: web.Request,
    command: StartWorkflow | SignalWorkflow | CancelWorkflow | TerminateWorkflow,
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
        workflow_id = _generated_id(request)
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
    timeouts = {name: _timeout_ms(body, name) for name in ("execution_timeout_s", "run_timeout_s")}
    # The same request is the same command, so a client's retry is answered by the engine as
    # already started; whether a start happens is decided there alone (send first, always).
    command_id = start_command_id(workflow_id, wtype, version, encoded)
    pool = request.app[POOL]
    if await _conflicts(pool, workflow_id, wtype, version, value, command_id):
        raise ApiError(
            409,
            f"workflow id {workflow_id!r} was already started with a different type, "
            "version or input; choose a new id, or repeat the original request exactly",
            field="id",
        )
    fault_point("api_before_start_send")
    start = StartWorkflow(
        workflow_id,
        wtype,
        encoded,
        version,
        command_id,
        execution_timeout_ms=timeouts["execution_timeout_s"],
        run_timeout_ms=timeouts["run_timeout_s"],
    )
    await _send(request, start)
    fault_point("api_after_start_send")
    try:
        await queries.record_start_request(pool, workflow_id, wtype, version, value, command_id)
    except _READ_MODEL_AWAY as exc:
        # The start is in Kafka; only the "accepted" answer of GET before projection is lost.
        log.warning("start of %s sent; not noted in the read model: %s", workflow_id, exc)
    return web.json_response({"workflow_id": workflow_id}, status=202)


def _timeout_ms(body: dict[str, Any], name: str) -> int:
    """An optional workflow timeout in seconds (a positive number) as ms; 0 when left out."""
    value = body.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ApiError(
            400, f"{name} must be a positive number of seconds, or left out for none", field=name
        )
    return max(1, round(value * 1000))


_READ_MODEL_AWAY = (psycopg.OperationalError, PoolTimeout)
IDEMPOTENCY_KEY = "Idempotency-Key"


def _generated_id(request: web.Request) -> str:
    """A new workflow id; derived from the Idempotency-Key header when the client sends one, so
    a retried request without an id starts the same workflow, not a second one."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return f"wf-{uuid.uuid4().hex}"
    if not 0 < len(key) <= 200:
        raise ApiError(
            400,
            f"the {IDEMPOTENCY_KEY} header must be 1 to 200 characters; send a shorter unique "
            "key per request, or leave it out",
            field=IDEMPOTENCY_KEY,
        )
    return "wf-" + hashlib.sha256(f"idempotency-key\x00{key}".encode()).hexdigest()[:32]


async def _conflicts(
    pool: AsyncConnectionPool[Any],
    workflow_id: str,
    wtype: str,
    version: int | None,
    value: Any,
    command_id: str,
) -> bool:
    """Whether the read model already knows this id started differently (a fast, advisory 409;
    the engine refuses such a start anyway). Unknown while Postgres is away: send regardless."""
    try:
        existing = await queries.get_workflow(pool, workflow_id)
        if existing is not None:
            return (
                existing["type"] != wtype
                or not _same_input(existing["input"], value)
                or (version is not None and existing["version"] != version)
            )
        earlier = await queries.get_start_request(pool, workflow_id)
    except _READ_MODEL_AWAY as exc:
        log.info("start of %s: read model unavailable (%s); the engine decides", workflow_id, exc)
        return False
    return earlier is not None and earlier["command_id"] != command_id


async def signal_workflow(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    name = request.match_info["name"]
    value = await _json_body(request, root="body")
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


async def terminate_workflow(request: web.Request) -> web.Response:
    """Stop a workflow now, with no compensation: for one that is stuck or must not go on."""
    workflow_id = request.match_info["workflow_id"]
    body = await _json_body(request)
    usage = 'send {"reason": "<why>", "by": "<who, default api>"}'
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object; {usage}", field="body")
    unknown = sorted(set(body) - {"reason", "by"})
    if unknown:
        name = unknown[0]
        raise ApiError(400, f"{name} is not a field of a terminate request; {usage}", field=name)
    reason, by = body.get("reason"), body.get("by", "api")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, f"reason is required text, recorded in the history; {usage}", "reason")
    if not isinstance(by, str):
        raise ApiError(400, f"by must be text naming who terminates; {usage}", field="by")
    _check_size(request, reason, "reason")
    _check_size(request, by, "by")
    row = await _known(request, workflow_id)
    _refuse_closed(row, "terminate")
    command_id = f"api:{request[REQUEST_ID]}"
    await _send(request, TerminateWorkflow(workflow_id, reason, by or "api", command_id))
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
    after_seq = _int_param(request, "after_seq", 0, minimum=0, maximum=MAX_SEQ)
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
        cursor = request.query.get("cursor") or None
        if cursor is not None:
            # A forged cursor can carry any text; it must be searchable before it is searched.
            check_text(queries.decode_cursor(cursor)[1], "cursor")
        page = await queries.list_workflows(
            request.app[POOL],
            status=status,
            workflow_type=request.query.get("type") or None,
            limit=limit,
            cursor=request.query.get("cursor") or None,
        )
    except (queries.CursorError, InputError):
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
    app.router.add_post("/workflows/{workflow_id}/terminate", terminate_workflow)
    app.router.add_post("/task-tokens/{outcome}", answer_task_token)
