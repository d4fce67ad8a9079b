"""The orchestrator's HTTP app: health, readiness and metrics (the workflow API mounts here)."""

from __future__ import annotations

from aiohttp import web

from sagaflow.config import Config
from sagaflow_orchestrator.loop import Orchestrator

ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)
CONFIG = web.AppKey("config", Config)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    status = request.app[ORCHESTRATOR].status
    body = {"ready": status.ready, "assigned": sorted(status.assigned),
            "rebuilding": sorted(status.rebuilding)}
    return web.json_response(body, status=200 if status.ready else 503)


def make_app(config: Config, orchestrator: Orchestrator) -> web.Application:
    app = web.Application()
    app[CONFIG] = config
    app[ORCHESTRATOR] = orchestrator
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
