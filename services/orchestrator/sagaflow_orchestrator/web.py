"""The orchestrator's HTTP app: the workflow API, health, readiness, metrics and the spec.

`make_app` is the one app factory; resources (the read model pool, the command producer) live
in cleanup_ctx (see api.api_resources) and are reached through typed AppKeys.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any

import psycopg
from aiohttp import web
from psycopg_pool import PoolTimeout

from sagaflow.config import Config
from sagaflow.kafka import triage
from sagaflow.metrics import Metrics, metrics_handler
from sagaflow.readmodel import Projector
from sagaflow.readmodel.queries import ping
from sagaflow.telemetry import Telemetry
from sagaflow.ui import make_ui_app
from sagaflow_orchestrator import api, asks
from sagaflow_orchestrator.loop import Orchestrator

ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)
CONFIG = web.AppKey("config", Config)
PROJECTOR = web.AppKey("projector", Projector)
OPENAPI = web.AppKey("openapi", bytes)

READY_CHECK_TIMEOUT_S = 1.0


def load_openapi() -> dict[str, Any]:
    """The hand-written OpenAPI 3.1 document shipped next to this module."""
    raw = resources.files("sagaflow_orchestrator").joinpath("openapi.json").read_bytes()
    spec: dict[str, Any] = json.loads(raw)
    return spec


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when this orchestrator owns rebuilt partitions and Kafka and Postgres answer.

    Each dependency gets a short, bounded check so a probe never hangs on a dead broker.
    """
    status = request.app[ORCHESTRATOR].status
    kafka, postgres = await asyncio.gather(_kafka_ok(request.app), _postgres_ok(request.app))
    projector = _projector_ok(request.app)
    ready = status.ready and kafka is None and postgres is None and projector is None
    checks = {
        "orchestrator": "ok"
        if status.ready
        else "partitions not assigned or still rebuilding; wait, or check the consumer group",
        "kafka": kafka or "ok",
        "postgres": postgres or "ok",
    }
    if PROJECTOR in request.app:
        checks["projector"] = projector or "ok"
    body = {
        "ready": ready,
        "assigned": sorted(status.assigned),
        "rebuilding": sorted(status.rebuilding),
        "checks": checks,
    }
    return web.json_response(body, status=200 if ready else 503)


async def _kafka_ok(app: web.Application) -> str | None:
    producer = app[api.PRODUCER]
    topic = app[CONFIG].topics.commands

    def probe() -> str | None:
        md = triage.call(
            lambda: producer.list_topics(topic, timeout=READY_CHECK_TIMEOUT_S),
            "list_topics",
            deadline_s=READY_CHECK_TIMEOUT_S,
        )
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            return f"topic {topic} missing; run 'sagaflow topics create'"
        return None

    try:
        return await asyncio.wait_for(asyncio.to_thread(probe), READY_CHECK_TIMEOUT_S * 2)
    except (triage.AbortRequired, triage.FatalKafkaError, TimeoutError) as exc:
        return f"unreachable ({exc}); check SAGAFLOW_KAFKA_BOOTSTRAP and the brokers"


def _projector_ok(app: web.Application) -> str | None:
    """What the read model projector of this process waits for, if anything."""
    projector = app.get(PROJECTOR)
    if projector is None:
        return None
    away = projector.away()
    if not away:
        return None
    waiting = "; ".join(f"{dep}: {detail}" for dep, detail in sorted(away.items()))
    return (
        f"waiting for {', '.join(sorted(away))} ({waiting}); the read model resumes by itself "
        "when it is back"
    )[:1000]


async def _postgres_ok(app: web.Application) -> str | None:
    pool = app[api.POOL]
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await ping(pool)
    except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
        return f"unreachable ({type(exc).__name__}); check SAGAFLOW_DATABASE_URL and the database"
    return None


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def make_app(
    config: Config,
    orchestrator: Orchestrator,
    *,
    metrics: Metrics | None = None,
    projector: Projector | None = None,
    telemetry: Telemetry | None = None,
) -> web.Application:
    """The HTTP app. `metrics` is served at /metrics (an empty registry when not given);
    `projector`, when this process runs one, is kept for readers of its lag."""
    app = web.Application(
        middlewares=[
            api.access_log_middleware,
            api.errors_middleware,
            api.auth_middleware(config.api_token),
            api.parameters_middleware,
        ],
        # The payload limit is checked per field with a clear message; this bounds the body.
        client_max_size=config.max_payload_bytes + 16 * 1024,
    )
    app[CONFIG] = config
    app[api.API_CONFIG] = config
    app[ORCHESTRATOR] = orchestrator
    app[api.REGISTRY] = orchestrator.registry
    app[OPENAPI] = json.dumps(load_openapi()).encode()
    if projector is not None:
        app[PROJECTOR] = projector
    if telemetry is not None:
        app[api.TELEMETRY] = telemetry
    app.cleanup_ctx.append(api.api_resources)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler(metrics or Metrics()))
    app.router.add_get("/openapi.json", openapi)
    api.add_routes(app)
    asks.add_routes(app)
    app.add_subapp("/ui", make_ui_app(config, orchestrator.registry))
    return app
