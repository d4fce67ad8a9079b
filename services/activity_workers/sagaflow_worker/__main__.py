"""Entry point: `python -m sagaflow_worker` / `sagaflow-worker`.

Opens the app's resources and the idempotency store (migrating the schema under an advisory
lock), serves /healthz, /readyz and /metrics, and runs the task consumers until SIGTERM, when
in-flight activities finish and their offsets are committed before the process leaves its
consumer groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from typing import Any

import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from sagaflow.app import load_registry
from sagaflow.config import Config
from sagaflow.core.errors import FatalError
from sagaflow.db.connect import describe_url
from sagaflow.db.migrate import migrate
from sagaflow.metrics import GroupLag, WorkerMetrics, metrics_handler
from sagaflow.service import run_service
from sagaflow.telemetry import Telemetry
from sagaflow_worker.idempotency import IdempotencyStore
from sagaflow_worker.observe import WorkerObserver
from sagaflow_worker.runner import Worker

log = logging.getLogger("sagaflow_worker")
EXIT_FATAL = 3
"""The one documented fatal exit: Kafka says this process cannot go on (fenced, unrecoverable
producer); the platform restarts it with fresh clients."""
WORKER = web.AppKey("worker", Worker)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    status = request.app[WORKER].status
    ready = status.ready and status.database_ok
    body = {
        "ready": ready,
        "queues": list(status.queues),
        "database": "ok" if status.database_ok else "unavailable: retrying with backoff",
    }
    return web.json_response(body, status=200 if ready else 503)


def make_app(worker: Worker, metrics: WorkerMetrics | None = None) -> web.Application:
    app = web.Application()
    app[WORKER] = worker
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler(metrics or WorkerMetrics()))
    return app


async def _wait_for_database(config: Config, stop: threading.Event) -> bool:
    """Migrate, waiting with backoff while Postgres is away (a restart, a slow start): a worker
    started during a database outage waits for it instead of exiting. False if stopped first."""
    backoff = 0.5
    while not stop.is_set():
        try:
            await migrate(config.database_url)
            return True
        except (psycopg.OperationalError, PoolTimeout) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning(
                "waiting for Postgres at %s (%s); retrying in %.1fs",
                describe_url(config.database_url),
                reason,
                backoff,
            )
            await asyncio.sleep(backoff)  # backoff while the database is away
            backoff = min(backoff * 2, 5.0)
    return False


async def serve(config: Config, tracing: Telemetry) -> int:
    registry = load_registry(config.app)
    metrics = WorkerMetrics()
    owner = f"{socket.gethostname()}-{os.getpid()}"
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not await _wait_for_database(config, stop):
        return 0  # stopped while waiting
    async with contextlib.AsyncExitStack() as stack:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            config.database_url,
            min_size=1,
            max_size=max(4, config.worker_concurrency + 2),
            # Every statement of the store is atomic alone: no BEGIN/COMMIT round trips.
            kwargs={"autocommit": True},
            open=False,
        )
        await pool.open(wait=True, timeout=30)
        stack.push_async_callback(pool.close)
        resources: dict[str, Any] = {}
        for name, factory in registry.resources.items():
            resources[name] = await stack.enter_async_context(factory(config))
        worker = Worker(
            config,
            registry,
            IdempotencyStore(pool),
            resources,
            owner=owner,
            hooks=WorkerObserver(config, tracing, metrics),
        )
        for queue in worker.status.queues:
            lag = GroupLag(config, config.worker_group_prefix + queue, config.topics.tasks(queue))
            stack.callback(lag.close)
            metrics.add_lag_source(f"worker:{queue}", lag)
        runner = web.AppRunner(make_app(worker, metrics), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, config.http_host, config.worker_http_port).start()
        log.info("worker %s serving queues %s", owner, ", ".join(worker.status.queues))
        try:
            await worker.run(stop)
        except FatalError as exc:
            log.error("%s", exc)
            return EXIT_FATAL
    return 0


def main() -> int:
    return run_service("sagaflow-worker", serve)


if __name__ == "__main__":
    raise SystemExit(main())
