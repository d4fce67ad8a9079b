"""Schedules as the read model shows them: the running `sagaflow.schedule` workflows, their
spec (the run's input, which a pause or resume rewrites by continuing as new) and the children
they started that still run. Shared by `sagaflow schedule list` and `GET /schedules`."""

from __future__ import annotations

from typing import Any

from sagaflow.db import Target
from sagaflow.readmodel import queries
from sagaflow.schedule import ID_PREFIX, SCHEDULE_TYPE


async def list_schedules(target: Target, limit: int = 50) -> list[dict[str, Any]]:
    filters = queries.Filters(status="running", workflow_type=SCHEDULE_TYPE, id_prefix=ID_PREFIX)
    page = await queries.list_workflows(target, limit=limit, filters=filters)
    out = []
    for summary in page.workflows:
        row = await queries.get_workflow(target, summary["workflow_id"])
        if row is None:
            continue
        raw = row.get("input")
        spec: dict[str, Any] = raw if isinstance(raw, dict) else {}
        out.append(
            {
                "name": spec.get("name"),
                "workflow_id": row["workflow_id"],
                "workflow_type": spec.get("workflow_type"),
                "interval_s": spec.get("interval_s"),
                "overlap": spec.get("overlap"),
                "catchup_window_s": spec.get("catchup_window_s"),
                "paused": bool(spec.get("paused")),
                "running_children": [c["workflow_id"] for c in row.get("pending_children") or []],
            }
        )
    return out
