"""The app the activity-control integration tests deploy (SAGAFLOW_APP=tests.integration.
activity_app:registry): activities that heartbeat, stall, and obey cancellation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sagaflow.workflow import (
    ActivityCancelledError,
    ActivityContext,
    ActivityOptions,
    ApplicationError,
    Registry,
    RetryPolicy,
    WorkflowContext,
)

QUEUE = "control"
QUICK_RETRY = RetryPolicy(initial_interval_ms=200, maximum_attempts=3)
registry = Registry()


@registry.activity(name="stall_once", task_queue=QUEUE, retry_policy=QUICK_RETRY)
async def stall_once(ctx: ActivityContext, arg: Any) -> Any:
    """The first attempt reports progress, then hangs without heartbeating; a later one resumes
    from the progress it finds."""
    if ctx.heartbeat_details is None:
        ctx.heartbeat({"done": 5})
        await asyncio.sleep(3600)  # stuck: only the heartbeat timeout ends this attempt
    return {"attempt": ctx.attempt, "resumed_from": ctx.heartbeat_details}


@registry.activity(name="poll_until_cancelled", task_queue=QUEUE, retry_policy=QUICK_RETRY)
def poll_until_cancelled(ctx: ActivityContext, arg: Any) -> Any:
    """A sync activity: heartbeats and checks its cancel signal until it fires."""
    deadline = time.monotonic() + 120
    step = 0
    while time.monotonic() < deadline:
        step += 1
        ctx.heartbeat(step)
        if ctx.is_cancelled():
            raise ApplicationError(f"stopped at step {step}", type="StoppedOnCancel")
        time.sleep(0.05)  # the activity's own work, not synchronisation
    return "never cancelled"


@registry.activity(name="await_forever", task_queue=QUEUE, retry_policy=QUICK_RETRY)
async def await_forever(ctx: ActivityContext, arg: Any) -> Any:
    """An async activity: cancelled at its await when the workflow cancels it."""
    while True:
        ctx.heartbeat("alive")
        await asyncio.sleep(0.05)


@registry.activity(name="after", task_queue=QUEUE)
def after(ctx: ActivityContext, arg: Any) -> Any:
    return {"after": arg}


@registry.workflow(name="resume_after_stall", version=1)
async def resume_after_stall(ctx: WorkflowContext, arg: Any) -> Any:
    return await ctx.execute_activity("stall_once", arg, heartbeat_timeout=2)


@registry.workflow(name="cancel_running", version=1)
async def cancel_running(ctx: WorkflowContext, arg: dict[str, Any]) -> Any:
    handle = ctx.start_activity(
        arg["activity"], None, ActivityOptions(retry_policy=QUICK_RETRY), heartbeat_timeout=10
    )
    await ctx.wait_for_signal("stop")
    handle.cancel(wait_for_cancellation=arg["wait"])
    outcome: dict[str, Any]
    try:
        outcome = {"result": await handle}
    except ActivityCancelledError as err:
        outcome = {"cancelled": err.cause_type, "message": err.cause_message}
    outcome["then"] = await ctx.execute_activity("after", arg["activity"])
    return outcome
