"""Entry point: `python -m sagaflow_orchestrator` / `sagaflow-orchestrator`.

The Kafka loop runs in its own thread (confluent-kafka calls block); the asyncio main thread
serves HTTP and turns SIGTERM/SIGINT into a clean stop: the loop finishes its batch's
transaction, leaves the consumer group and the process exits 0. A fatal Kafka error exits 3
so the platform restarts the process with fresh clients.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

from aiohttp import web

from sagaflow import schedule
from sagaflow.app import load_registry
from sagaflow.asl.store import attach as attach_definitions
from sagaflow.config import Config
from sagaflow.core.errors import FatalError
from sagaflow.metrics import GroupLag, OrchestratorMetrics
from sagaflow.readmodel import Projector
from sagaflow.service import in_thread, run_service
from sagaflow.telemetry import Telemetry
from sagaflow_orchestrator.loop import Orchestrator
from sagaflow_orchestrator.observe import Observer
from sagaflow_orchestrator.web import make_app

log = logging.getLogger("sagaflow_orchestrator")

EXIT_FATAL = 3


async def serve(config: Config, tracing: Telemetry) -> int:
    registry = load_registry(config.app)
    schedule.register(registry)  # schedules are built-in workflows, whatever the app
    # State machines deployed with `sagaflow asl deploy`: all loaded before any rebuild.
    definitions = attach_definitions(config, registry)
    metrics = OrchestratorMetrics()
    commands_lag = GroupLag(config, config.orchestrator_group, config.topics.commands)
    metrics.add_lag_source("orchestrator", commands_lag)
    orchestrator = Orchestrator(config, registry, hooks=Observer(config, tracing, metrics))
    projector = (
        Projector(config, group_id=config.projector_group) if config.projector_enabled else None
    )
    if projector is not None:
        metrics.add_lag_source("projector", projector.lag_by_partition)
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        make_app(config, orchestrator, metrics=metrics, projector=projector, telemetry=tracing),
        access_log=None,
    )
    await runner.setup()
    await web.TCPSite(runner, config.http_host, config.http_port).start()
    log.info("http on %s:%d", config.http_host, config.http_port)
    projecting = in_thread("projector", _project, projector, stop) if projector else None
    try:
        await in_thread("orchestrator", orchestrator.run, stop)
        if projecting is not None:
            await projecting  # re-raises what stopped the projector
        return 0
    except FatalError as exc:
        log.error("%s", exc)
        return EXIT_FATAL
    finally:
        stop.set()
        if projecting is not None and not projecting.done():
            await asyncio.wait([projecting], timeout=30)
        await runner.cleanup()
        commands_lag.close()
        definitions.stop()


def _project(projector: Projector, stop: threading.Event) -> None:
    """The projector's thread. If it stops for good, the whole process stops (exit 3), so the
    platform restarts it instead of leaving the read model silently behind."""
    try:
        projector.run(stop)
    finally:
        stop.set()


def main() -> int:
    return run_service("sagaflow-orchestrator", serve)


if __name__ == "__main__":
    raise SystemExit(main())
