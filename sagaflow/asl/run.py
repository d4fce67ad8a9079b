"""Run one execution in-process on the test kit's virtual time (what `sagaflow asl run` does).

No Kafka is needed and Waits return at once: the kit jumps the clock to the next timer. The
outcome is the shape `sagaflow asl run --json` prints:
{"status": "SUCCEEDED", "output": ...} or {"status": "FAILED"|"TIMED_OUT", "error", "cause"}.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sagaflow.asl.interpreter import Machine, register
from sagaflow.core import messages as m
from sagaflow.testing import WorkflowEnvironment
from sagaflow.workflow import Registry

WORKFLOW_ID = "asl-run"


def outcome_of(env: WorkflowEnvironment, workflow_id: str) -> dict[str, Any]:
    """The execution's outcome as `asl run` reports it."""
    status = env.status(workflow_id)
    if status == "completed":
        return {"status": "SUCCEEDED", "output": env.result(workflow_id)}
    if status == "failed":
        failed = env.failure(workflow_id)
        details = json.loads(failed.details) if failed.details else None
        if isinstance(details, dict) and "Error" in details:
            timed_out = details.get("ExecutionTimedOut") is True
            return {
                "status": "TIMED_OUT" if timed_out else "FAILED",
                "error": details["Error"] or None,
                "cause": details["Cause"] or None,
            }
        return {"status": "FAILED", "error": failed.error_type, "cause": failed.message}
    if status == "parked":
        parked = [e.body for e in env.history(workflow_id) if isinstance(e.body, m.WorkflowParked)]
        cause = parked[-1].message if parked else "parked"
        return {"status": "FAILED", "error": "Sagaflow.Parked", "cause": cause}
    return {"status": (status or "unknown").upper()}


def run_definition(
    definition: Machine,
    input: Any,
    registry: Registry | None = None,
    *,
    name: str = "state-machine",
    on_env: Callable[[WorkflowEnvironment], None] | None = None,
) -> dict[str, Any]:
    """Run `definition` (validated) on `input` with `registry`'s activities; its outcome.

    `on_env`, if given, is called after the run stops with nothing left to do (e.g. a test
    answers a task token there and the run goes on).
    """
    registry = registry if registry is not None else Registry()
    workflow_type = name
    version = max(registry.workflows.get(workflow_type, {0: None}).keys()) + 1
    register(registry, workflow_type, definition, version)
    with WorkflowEnvironment(registry) as env:
        env.start(workflow_type, input, workflow_id=WORKFLOW_ID, version=version)
        env.run()
        if on_env is not None:
            on_env(env)
            env.run()
        return outcome_of(env, WORKFLOW_ID)
