"""The web UI: an aiohttp sub-application, served by the orchestrator under /ui and standalone
by `sagaflow ui`.

It reads the read model (sagaflow.readmodel.queries), the event log (sagaflow.ui.logview), and
Jaeger's query API (sagaflow.ui.trace); it acts through the client (signal, cancel, terminate)
and the CLI's dead-letter code. Pages are rendered on the server; a small script of our own adds
live refresh, local times and lazy trace loading. Nothing is fetched from the internet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jinja2
import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from sagaflow.cli.output import CliError
from sagaflow.client import Client
from sagaflow.config import Config
from sagaflow.core.registry import Registry
from sagaflow.core.status import CLOSED_STATUSES
from sagaflow.readmodel import queries
from sagaflow.readmodel.fold import STATUSES
from sagaflow.ui import actions, dlqpages, graph, health, logview, statemachine
from sagaflow.ui.common import (
    CLIENT,
    CONFIG,
    DEFINITIONS,
    HTTP,
    POOL,
    PREFIX,
    REGISTRY,
    TEMPLATES,
    BadInput,
    Forbidden,
    render,
)
from sagaflow.ui.stategraph import MARK_TEXT, state_graph_svg
from sagaflow.ui.trace import TraceUnavailable, fetch_trace

log = logging.getLogger("sagaflow.ui")

PAGE_SIZE = 50


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sagaflow.ui", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)
    env.filters["ms_iso"] = lambda ms: (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        if ms is not None
        else ""
    )
    env.filters["us_ms"] = lambda us: f"{us / 1000:.1f} ms"
    return env


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the read model pool, the command client and Jaeger's HTTP session."""
    config = app[CONFIG]
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        config.database_url, min_size=1, max_size=4, name="sagaflow-ui", open=False, timeout=5.0
    )
    # Not waiting: the UI comes up while Postgres is down and says so on each page.
    await pool.open(wait=False)
    app[POOL] = pool
    app[CLIENT] = Client(config)
    app[HTTP] = aiohttp.ClientSession()
    try:
        yield
    finally:
        await app[HTTP].close()
        await pool.close()


def make_ui_app(
    config: Config, registry: Registry | None = None, prefix: str = "/ui"
) -> web.Application:
    """The UI as an app of its own; mount it with `add_subapp(prefix, ...)`. `registry`, when
    given, lets the workflow page tell which signals a running workflow waits for."""
    app = web.Application(middlewares=[_errors_middleware])
    app[CONFIG] = config
    if registry is not None:
        app[REGISTRY] = registry
    app[TEMPLATES] = _templates()
    app[PREFIX] = prefix.rstrip("/")
    app[DEFINITIONS] = statemachine.Definitions(config)
    app.cleanup_ctx.append(_resources)
    static = Path(str(resources.files("sagaflow.ui").joinpath("static")))
    app.router.add_static("/static", static, name="static")
    app.router.add_get("/", workflows_page)
    app.router.add_get("/workflows/{workflow_id}", workflow_page)
    app.router.add_get("/workflows/{workflow_id}/trace", trace_fragment)
    app.router.add_post("/workflows/{workflow_id}/signal", actions.signal_action)
    app.router.add_post("/workflows/{workflow_id}/cancel", actions.cancel_action)
    app.router.add_post("/workflows/{workflow_id}/terminate", actions.terminate_action)
    app.router.add_post("/workflows/{workflow_id}/query", actions.query_action)
    app.router.add_get("/health", health_page)
    app.router.add_get("/dlq", dlqpages.dlq_page)
    app.router.add_get("/dlq/{partition:\\d+}/{offset:\\d+}", dlqpages.dlq_item_page)
    app.router.add_post("/dlq/{partition:\\d+}/{offset:\\d+}/redrive", dlqpages.dlq_redrive_action)
    app.router.add_post("/dlq/redrive-all", dlqpages.dlq_redrive_all_action)
    return app


@web.middleware
async def _errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Failures of what the UI stands on become a page that says what to do, not a 500."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except BadInput as exc:
        return render(request, "error.html", 400, title="Cannot do that", message=str(exc))
    except Forbidden as exc:
        return render(request, "error.html", 403, title="Not allowed", message=str(exc))
    except (psycopg.OperationalError, PoolTimeout) as exc:
        return render(
            request,
            "error.html",
            503,
            title="The read model is unreachable",
            message=f"Postgres did not answer ({type(exc).__name__}); check "
            "SAGAFLOW_DATABASE_URL and that the database is up, then reload.",
        )
    except CliError as exc:
        return render(request, "error.html", 503, title="Kafka did not answer", message=str(exc))


# --------------------------------------------------------------------------- workflows


def _date(raw: str, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise BadInput(f"{name}={raw!r} is not a date and time like 2026-12-06T10:00") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filters(q: Any) -> queries.Filters:
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadInput(f"status={status!r} is not one of {', '.join(STATUSES)}")
    version_raw = q.get("version", "").strip()
    if version_raw and not version_raw.isdigit():
        raise BadInput(f"version={version_raw!r} must be a whole number")
    return queries.Filters(
        status=status,
        workflow_type=q.get("type", "").strip() or None,
        version=int(version_raw) if version_raw else None,
        created_from=_date(q.get("from", ""), "from"),
        created_to=_date(q.get("to", ""), "to"),
        id_prefix=q.get("q", "").strip() or None,
    )


async def workflows_page(request: web.Request) -> web.Response:
    q = request.query
    filters = _filters(q)
    cursor = q.get("cursor") or None
    started = time.perf_counter()
    pool = request.app[POOL]
    try:
        page, counts = await asyncio.gather(
            queries.list_workflows(pool, limit=PAGE_SIZE, cursor=cursor, filters=filters),
            queries.count_by_status(pool, filters),
        )
    except queries.CursorError as exc:
        raise BadInput(f"the page cursor {exc} was not made by this UI; start again") from exc
    keep = {k: v for k, v in q.items() if k != "cursor" and v}
    others = {k: v for k, v in keep.items() if k != "status"}
    # A status chip narrows the current search; "all" drops only the status.
    status_urls = {
        s: f"{request.app[PREFIX]}/?{urlencode({**others, 'status': s})}" for s in STATUSES
    }
    status_urls[""] = f"{request.app[PREFIX]}/?{urlencode(others)}"
    next_url = (
        f"{request.app[PREFIX]}/?{urlencode({**keep, 'cursor': page.next_cursor})}"
        if page.next_cursor
        else None
    )
    return render(
        request,
        "workflows.html",
        workflows=page.workflows,
        counts=counts,
        total=sum(counts.values()),
        statuses=STATUSES,
        q=q,
        filtered=bool(keep),
        status_urls=status_urls,
        next_url=next_url,
        first_url=f"{request.app[PREFIX]}/?{urlencode(keep)}" if cursor else None,
        query_ms=round((time.perf_counter() - started) * 1000, 1),
    )


async def workflow_page(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    pool = request.app[POOL]
    workflow, runs, rejections = await asyncio.gather(
        queries.get_workflow(pool, workflow_id),
        queries.get_runs(pool, workflow_id),
        queries.get_rejections(pool, workflow_id),
    )
    if workflow is None and not rejections:
        return render(
            request,
            "error.html",
            404,
            title=f"No workflow {workflow_id}",
            message="The read model has no workflow with this id. If it was just started, the "
            "projector may not have caught up yet: reload in a moment. Otherwise check the id "
            "on the workflows page.",
        )
    view = logview.LogView()
    if runs:
        running = workflow is not None and workflow["status"] not in CLOSED_STATUSES
        view = await asyncio.to_thread(
            logview.read_workflow_log,
            request.app[CONFIG],
            workflow_id,
            runs[0]["partition"],
            runs[0]["first_offset"],
            runs[-1]["last_offset"],
            request.app.get(REGISTRY),
            running=running,
            recorded_waits=workflow.get("signal_waits") if workflow is not None else None,
        )
    steps = logview.graph_steps(view.events)
    if workflow is not None and view.signal_waits:
        # A signal wait's timeout timer is drawn as part of the wait, not as a sleep.
        timeouts = {f"timer {w.timeout_timer_seq}": w.name for w in view.signal_waits}
        for step in steps:
            if step["kind"] == "timer" and step["label"] in timeouts:
                step["label"] = f"timeout of {timeouts[step['label']]}"
        steps += [
            {"kind": "signal", "label": f"wait for {w.name}", "state": "waiting"}
            for w in view.signal_waits
        ]
    if workflow is not None and workflow["status"] in CLOSED_STATUSES:
        # Closed (terminated, timed out) with steps under way: they will never finish.
        for step in steps:
            if step["state"] in ("running", "waiting"):
                step["state"] = "abandoned"
    compensations = logview.compensations(view)
    config = request.app[CONFIG]
    machine = await _state_machine(request, workflow, view) if workflow else None
    if machine is not None:
        graph_svg = machine["svg"]
    else:
        graph_svg = graph.render(workflow["type"], steps, workflow) if workflow else ""
    return render(
        request,
        "workflow.html",
        wf=workflow,
        workflow_id=workflow_id,
        runs=runs,
        rejections=rejections,
        view=view,
        compensations=compensations,
        graph_svg=graph_svg,
        machine=machine,
        mark_text=MARK_TEXT,
        jaeger_link=(
            f"{config.jaeger_ui_url}/trace/{view.trace_id}"
            if config.jaeger_ui_url and view.trace_id
            else None
        ),
        closed=workflow is not None and workflow["status"] in CLOSED_STATUSES,
        flash=request.query.get("sent", ""),
        action=actions.action_result(request, view, rejections),
        queried=actions.query_result(request),
        query_names=_query_names(request, workflow),
    )


def _query_names(request: web.Request, workflow: dict[str, Any] | None) -> list[str]:
    """The queries the workflow's type registers, when the UI runs with the registry."""
    registry = request.app.get(REGISTRY)
    if registry is None or workflow is None:
        return []
    return registry.query_names(str(workflow["type"]))


async def _state_machine(
    request: web.Request, workflow: dict[str, Any], view: logview.LogView
) -> dict[str, Any] | None:
    """The state graph and path of a state machine execution; None for a code workflow."""
    kind, version = workflow["type"], workflow["version"]
    if statemachine.is_state_machine(request.app.get(REGISTRY), kind, version) is False:
        return None
    try:
        definition = await asyncio.to_thread(request.app[DEFINITIONS].get, kind, version)
    except statemachine.DefinitionsUnreadable as exc:
        return {"svg": "", "path": None, "problem": str(exc)}
    if definition is None:
        return None
    path, problem = await asyncio.to_thread(
        statemachine.state_path,
        definition,
        view.events,
        workflow["status"],
        workflow.get("state_path"),
    )
    return {
        "svg": state_graph_svg(definition, path, kind),
        "path": path,
        "problem": problem,
    }


async def trace_fragment(request: web.Request) -> web.Response:
    trace_id = request.query.get("trace_id", "")
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise BadInput(f"trace_id={trace_id!r} is not a 32-digit hex trace id")
    config = request.app[CONFIG]
    try:
        spans = await fetch_trace(request.app[HTTP], config.jaeger_query_url, trace_id)
        problem = None
    except TraceUnavailable as exc:
        spans, problem = [], str(exc)
    return render(
        request,
        "trace.html",
        spans=spans,
        services=sorted({s.service for s in spans}),
        problem=problem,
        trace_id=trace_id,
    )


# --------------------------------------------------------------------------- health


async def health_page(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    registry = request.app.get(REGISTRY)
    queues = registry.task_queues() if registry is not None else frozenset[str]()
    postgres: str | None = None
    try:
        async with asyncio.timeout(2):
            await queries.ping(request.app[POOL])
    except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
        postgres = f"unreachable ({type(exc).__name__}); check SAGAFLOW_DATABASE_URL"
    groups = await asyncio.to_thread(health.read_health, config, queues)
    orchestrators = groups[0]
    ready = postgres is None and not orchestrators.problem and bool(orchestrators.members)
    return render(
        request,
        "health.html",
        groups=groups,
        postgres=postgres,
        ready=ready,
        orchestrators=orchestrators,
        queues_known=registry is not None,
    )
