"""The schedules API: a schedule is the workflow `schedule:NAME` (sagaflow.schedule), so
creating one sends its StartWorkflow and pausing, resuming or deleting one sends its control
signal; the list comes from the read model.

    POST /schedules                       {name, workflow_type, interval_s, input?, overlap?,
                                           catchup_window_s?}
    GET  /schedules
    POST /schedules/{name}/pause|resume|delete
"""

from __future__ import annotations

from dataclasses import fields

from aiohttp import web

from sagaflow import schedule
from sagaflow.core.identity import start_command_id
from sagaflow.core.messages import SignalWorkflow, StartWorkflow
from sagaflow.core.status import CLOSED_STATUSES
from sagaflow.readmodel import queries
from sagaflow.readmodel.schedules import list_schedules
from sagaflow_orchestrator.api import POOL, REQUEST_ID, ApiError, _check_size, _json_body, _send

_SETTABLE = {f.name for f in fields(schedule.ScheduleSpec)} - {
    "paused",
    "next_fire_ms",
    "started",
    "skipped",
    "missed",
}
_USAGE = (
    'send {"name", "workflow_type", "interval_s", optional "input", "overlap" '
    f'({"|".join(schedule.OVERLAP_POLICIES)}), "catchup_window_s"}}'
)


async def create_schedule(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object; {_USAGE}", field="body")
    unknown = sorted(set(body) - _SETTABLE)
    if unknown:
        raise ApiError(400, f"{unknown[0]} is not a field of a schedule; {_USAGE}", unknown[0])
    missing = [f for f in ("name", "workflow_type", "interval_s") if f not in body]
    if missing:
        raise ApiError(400, f"{missing[0]} is required; {_USAGE}", field=missing[0])
    spec = schedule.ScheduleSpec(**body)
    problem = spec.problem()
    if problem:
        field, _, what = problem.partition(": ")
        raise ApiError(400, f"{field} must be {what}; {_USAGE}", field=field)
    workflow_id = schedule.schedule_id(spec.name)
    existing = await queries.get_workflow(request.app[POOL], workflow_id)
    if existing is not None and existing["status"] not in CLOSED_STATUSES:
        raise ApiError(
            409,
            f"schedule {spec.name!r} exists ({existing['status']}); delete it first with "
            f"POST /schedules/{spec.name}/delete",
        )
    encoded = _check_size(request, spec.to_json(), "body")
    command_id = start_command_id(workflow_id, schedule.SCHEDULE_TYPE, None, encoded)
    await _send(
        request, StartWorkflow(workflow_id, schedule.SCHEDULE_TYPE, encoded, None, command_id)
    )
    return web.json_response(
        {"schedule": spec.name, "workflow_id": workflow_id, "spec": spec.to_json()}, status=202
    )


async def get_schedules(request: web.Request) -> web.Response:
    return web.json_response({"schedules": await list_schedules(request.app[POOL], 500)})


async def control_schedule(request: web.Request) -> web.Response:
    name, action = request.match_info["name"], request.match_info["action"]
    if action not in schedule.ACTIONS:
        raise ApiError(404, f"no action {action!r}; use one of {', '.join(schedule.ACTIONS)}")
    workflow_id = schedule.schedule_id(name)
    row = await queries.get_workflow(request.app[POOL], workflow_id)
    if row is None or row["status"] in CLOSED_STATUSES:
        raise ApiError(404, f"no running schedule {name!r}; list them with GET /schedules")
    encoded = _check_size(request, {"action": action}, "body")
    command_id = f"api:{request[REQUEST_ID]}"
    await _send(request, SignalWorkflow(workflow_id, schedule.CONTROL_SIGNAL, encoded, command_id))
    return web.json_response(
        {"schedule": name, "workflow_id": workflow_id, "action": action}, status=202
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/schedules", create_schedule)
    app.router.add_get("/schedules", get_schedules)
    app.router.add_post("/schedules/{name}/{action}", control_schedule)
