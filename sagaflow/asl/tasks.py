"""Task states: resources resolve to sagaflow activities.

`activity:<name>`, a Lambda function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`)
and `arn:aws:states:::lambda:invoke` with `Parameters.FunctionName` all call the activity
registered under the bare name; `lambda:invoke` wraps the result the way AWS does. A
`.waitForTaskToken` resource hands `$$.Task.Token` to the activity and then waits, as a signal
wait does (free while waiting), for SendTaskSuccess / Failure / Heartbeat on that token.

The engine runs exactly one attempt per activity call: Retry in the definition decides retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sagaflow.asl import paths, tokens
from sagaflow.asl.errors import HEARTBEAT_TIMEOUT, TIMEOUT, StatesError, runtime
from sagaflow.workflow import (
    ActivityError,
    ActivityOptions,
    CancelledError,
    RegistryError,
    RetryPolicy,
    SignalTimeoutError,
)

if TYPE_CHECKING:
    from sagaflow.asl.interpreter import Execution

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
WAIT_SUFFIX = ".waitForTaskToken"
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)
_TIMEOUT_TYPES = frozenset({"StartToCloseTimeout", "ScheduleToCloseTimeout"})
HEARTBEAT_TIMEOUT_TYPE = "HeartbeatTimeout"
"""The engine's error_type for an attempt that stopped heartbeating (sagaflow.core.retry)."""


@dataclass(frozen=True)
class Resource:
    activity: str | None
    """The activity name; None for lambda:invoke (it comes from Parameters.FunctionName)."""
    invoke: bool
    wait_for_token: bool


def parse_resource(resource: str) -> Resource:
    wait = resource.endswith(WAIT_SUFFIX)
    base = resource.removesuffix(WAIT_SUFFIX)
    if base == LAMBDA_INVOKE:
        return Resource(None, True, wait)
    if base.startswith("activity:"):
        return Resource(base.removeprefix("activity:"), False, wait)
    return Resource(function_name(base), False, wait)


def function_name(name_or_arn: str) -> str:
    """The bare function name of a Lambda ARN (alias/version suffix dropped) or a plain name."""
    parts = name_or_arn.split(":")
    if len(parts) >= 7 and parts[:3] == ["arn", "aws", "lambda"]:
        return parts[6]
    return name_or_arn


def prepare(ex: Execution, state: dict[str, Any], context: dict[str, Any]) -> None:
    """Put a fresh task token in the context object ($$.Task.Token) before Parameters are
    rendered, when the resource waits for one (each attempt gets its own token)."""
    if state["Resource"].endswith(WAIT_SUFFIX):
        signal = tokens.SIGNAL_PREFIX + ex.ctx.uuid4()
        context["Task"] = {"Token": tokens.TaskToken(ex.ctx.workflow_id, signal).encode()}


async def run_task(
    ex: Execution, state: dict[str, Any], effective: Any, selected: Any, context: Any
) -> Any:
    """Run one attempt of a Task state and return its raw result. `selected` is the state's
    input after InputPath, which TimeoutSecondsPath and HeartbeatSecondsPath read."""
    resource = parse_resource(state["Resource"])
    argument = effective
    activity = resource.activity
    if resource.invoke:
        if not isinstance(effective, dict) or "FunctionName" not in effective:
            raise runtime(f"{LAMBDA_INVOKE} needs Parameters.FunctionName (the activity to call)")
        activity = function_name(str(effective["FunctionName"]))
        argument = effective.get("Payload", {})
    assert activity is not None
    timeout = _seconds(state, "TimeoutSeconds", selected, context)
    heartbeat = _seconds(state, "HeartbeatSeconds", selected, context)
    started_ms = ex.now_ms()
    signal = ""
    if resource.wait_for_token:
        signal = tokens.TaskToken.decode(context["Task"]["Token"]).signal
    schedule_to_close = ex.bound(timeout)
    options = ActivityOptions(
        retry_policy=ONE_ATTEMPT,
        start_to_close_timeout=None if timeout is None else timedelta(seconds=timeout),
        schedule_to_close_timeout=(
            None if schedule_to_close is None else timedelta(seconds=max(schedule_to_close, 0.001))
        ),
        # With a task token, HeartbeatSeconds bounds the wait for SendTaskHeartbeat instead.
        heartbeat_timeout=(
            None if heartbeat is None or resource.wait_for_token else timedelta(seconds=heartbeat)
        ),
    )
    try:
        handle = ex.ctx.start_activity(activity, argument, options)
        try:
            result = await handle
        except CancelledError:
            # The branch is being stopped (a sibling failed, or the execution was cancelled):
            # the running activity is told to stop too, and nothing waits for it.
            if ex.cancels_siblings:
                handle.cancel(wait_for_cancellation=False)
            raise
    except RegistryError as exc:
        raise StatesError(
            "Sagaflow.ActivityNotRegistered",
            f"no activity {activity!r} is registered: {exc}; register it "
            f"(@registry.activity(name={activity!r}, ...)) in the app the workers load",
        ) from exc
    except ActivityError as exc:
        ex.check_deadline()
        if exc.cause_type == HEARTBEAT_TIMEOUT_TYPE:
            raise StatesError(
                HEARTBEAT_TIMEOUT,
                f"activity {activity!r} sent no heartbeat for {heartbeat} s "
                f"(HeartbeatSeconds): {exc.cause_message}",
            ) from exc
        if exc.cause_type in _TIMEOUT_TYPES or exc.reason == "schedule_to_close_timeout":
            raise StatesError(
                TIMEOUT, f"activity {activity!r} timed out: {exc.cause_message}"
            ) from exc
        raise StatesError(exc.cause_type, exc.cause_message) from exc
    if resource.wait_for_token:
        return await _wait_for_token(ex, signal, started_ms, timeout, heartbeat)
    if resource.invoke:
        return {"Payload": result, "StatusCode": 200, "ExecutedVersion": "$LATEST"}
    return result


async def _wait_for_token(
    ex: Execution, signal: str, started_ms: int, timeout: float | None, heartbeat: float | None
) -> Any:
    while True:
        limits = [s for s in (heartbeat,) if s is not None]
        if timeout is not None:
            limits.append(max(0.0, timeout - (ex.now_ms() - started_ms) / 1000))
        wait = ex.bound(min(limits) if limits else None)
        try:
            answer = await ex.ctx.wait_for_signal(signal, timeout=wait)
        except SignalTimeoutError as exc:
            ex.check_deadline()
            raise StatesError(
                TIMEOUT,
                "no task token answer (SendTaskSuccess/Failure) or heartbeat arrived in time",
            ) from exc
        kind = answer.get("kind") if isinstance(answer, dict) else None
        if kind == "success":
            return answer.get("output")
        if kind == "failure":
            raise StatesError(answer.get("error") or "", answer.get("cause") or "")
        # a heartbeat (or anything else) restarts the heartbeat interval


def _seconds(state: dict[str, Any], field: str, data: Any, context: Any) -> float | None:
    if field in state:
        return float(state[field])
    path = state.get(f"{field}Path")
    if path is None:
        return None
    value = paths.read(path, data, context, what=f"{field}Path")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise runtime(f"{field}Path must give a positive number of seconds, got {value!r}")
    return float(value)
