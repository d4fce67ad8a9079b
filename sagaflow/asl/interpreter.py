"""The interpreter: a state machine run as an ordinary sagaflow workflow.

`register(registry, name, definition, version)` registers an `async def` workflow whose code is
this interpreter closed over the (validated) definition. It only uses the public workflow API
(activities, timers, signals, gather, ctx.now/random/uuid4), so every engine guarantee carries
over: each state's effects are events, replay re-runs the interpreter deterministically, and a
running execution finishes on the definition version it started with.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from sagaflow.asl import choice, intrinsics, paths
from sagaflow.asl.errors import (
    NO_CHOICE_MATCHED,
    TIMEOUT,
    TOLERATED_FAILURE_EXCEEDED,
    StatesError,
    matches,
    runtime,
)
from sagaflow.asl.tasks import prepare as prepare_task
from sagaflow.asl.tasks import run_task
from sagaflow.codec import dumps_payload
from sagaflow.workflow import CancelledError, Registry, SignalTimeoutError, WorkflowContext

Machine = dict[str, Any]

RECORD_STATES = "asl.record-state-transitions"
"""Patch id: executions started since state transitions are recorded record them; those whose
history predates it replay (and finish) as they ran, without the records."""
CANCEL_SIBLINGS = "asl.cancel-sibling-branches"
"""Patch id: when a branch of a Parallel state (or an item of a Map state) fails, the others
are stopped, as AWS does: their timers cancelled, their waits abandoned, no new activities
scheduled, and their running activities asked to stop (ActivityHandle.cancel, not waited for).
Executions whose history predates it let the others run on, as they did."""
PATCHES = (RECORD_STATES, CANCEL_SIBLINGS)
"""Every behaviour change since the first interpreter, each a `ctx.patched` id."""
RECORDED_OUTPUT_LIMIT = 32 * 1024
"""A state's output bigger than this (encoded) is recorded as its size only: the record is for
views, and the state's data still flows on whole."""


class Execution:
    """What one run of a state machine shares across states: the workflow context, the
    context object's fixed part and the execution deadline."""

    def __init__(self, ctx: WorkflowContext, name: str, definition: Machine, input: Any) -> None:
        self.ctx = ctx
        started = ctx.now()
        self.context: dict[str, Any] = {
            "Execution": {
                "Id": f"sagaflow:{name}:{ctx.workflow_id}",
                "Name": ctx.workflow_id,
                "Input": copy.deepcopy(input),
                "StartTime": _iso(started),
                "RedriveCount": 0,
            },
            "StateMachine": {"Id": f"sagaflow:{name}:{ctx.version}", "Name": name},
        }
        timeout = definition.get("TimeoutSeconds")
        self.deadline_ms = (
            None if timeout is None else int(started.timestamp() * 1000) + int(timeout) * 1000
        )
        self.rng = intrinsics.Random(ctx.random, ctx.uuid4)
        self.records_states = False
        """Whether this execution records its state transitions (decided once, at its start)."""
        self.cancels_siblings = False
        """Whether a failing branch stops its siblings (decided once, at its start)."""

    def record(
        self,
        name: str,
        state: dict[str, Any],
        transition: str,
        scope: str,
        *,
        output: Any = None,
        error: StatesError | None = None,
        next_state: str | None = None,
    ) -> None:
        """Record a state transition (an event of its own) when this execution records them."""
        if not self.records_states:
            return
        size = 0 if output is None else len(dumps_payload(output))
        if size > RECORDED_OUTPUT_LIMIT:
            output = {"sagaflow.output_bytes": size}
        self.ctx.record_state(
            name,
            state["Type"],
            transition,
            scope=scope,
            output=output,
            error=error.error if error is not None else "",
            cause=error.cause if error is not None else "",
            next_state=next_state or "",
        )

    # ------------------------------------------------------------------ time and deadline

    def now_ms(self) -> int:
        return int(self.ctx.now().timestamp() * 1000)

    def remaining_s(self) -> float | None:
        if self.deadline_ms is None:
            return None
        return max(0.0, (self.deadline_ms - self.now_ms()) / 1000)

    def check_deadline(self) -> None:
        if self.deadline_ms is not None and self.now_ms() >= self.deadline_ms:
            raise StatesError(
                TIMEOUT,
                "the execution ran longer than the state machine's TimeoutSeconds",
                execution_timed_out=True,
            )

    def bound(self, seconds: float | None) -> float | None:
        """`seconds` cut to what is left of the execution's TimeoutSeconds."""
        left = self.remaining_s()
        if left is None:
            return seconds
        return left if seconds is None else min(seconds, left)

    async def sleep(self, seconds: float) -> None:
        """A durable timer that ends early (States.Timeout) at the execution deadline."""
        bounded = self.bound(seconds)
        assert bounded is not None
        await self.ctx.sleep(timedelta(seconds=max(0.0, bounded)))
        self.check_deadline()

    def intrinsic(self, text: str, data: Any, context: Any) -> Any:
        return intrinsics.evaluate(text, data, context, self.rng)

    def render(self, template: Any, data: Any, context: Any) -> Any:
        return paths.render(template, data, context, self.intrinsic)


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


async def run_machine(
    ex: Execution,
    machine: Machine,
    data: Any,
    extra: dict[str, Any] | None = None,
    scope: str = "",
) -> Any:
    """Run states from StartAt until a terminal state; return its output. `scope` names the
    branch this machine is (see StateTransitioned.scope)."""
    name: str = machine["StartAt"]
    while True:
        ex.check_deadline()
        state = machine["States"][name]
        context = {
            **ex.context,
            **(extra or {}),
            "State": {"Name": name, "EnteredTime": _iso(ex.ctx.now()), "RetryCount": 0},
        }
        ex.record(name, state, "entered", scope)
        try:
            data, next_name, caught = await _run_state(ex, state, data, context, scope)
        except StatesError as err:
            ex.record(name, state, "failed", scope, error=err)
            raise
        except CancelledError:
            ex.record(name, state, "cancelled", scope)
            raise
        if caught is not None:
            ex.record(name, state, "failed", scope, error=caught, next_state=next_name)
        else:
            ex.record(name, state, "succeeded", scope, output=data, next_state=next_name)
        if next_name is None:
            return data
        name = next_name


async def _run_state(
    ex: Execution, state: dict[str, Any], raw: Any, context: dict[str, Any], scope: str
) -> tuple[Any, str | None, StatesError | None]:
    """The state's output, the state to run next, and the error a Catch caught (if one did)."""
    kind = state["Type"]
    following = None if state.get("End") else state.get("Next")
    if kind == "Choice":
        effective = paths.select(state.get("InputPath", "$"), raw, context, field="InputPath")
        for rule in state["Choices"]:
            if choice.evaluate(rule, effective, context):
                following = rule["Next"]
                break
        else:
            following = state.get("Default")
            if following is None:
                raise StatesError(
                    NO_CHOICE_MATCHED,
                    f"no choice rule matched and there is no Default (state "
                    f"{context['State']['Name']!r}); add a Default or a catch-all rule",
                )
        return _output(state, effective, context), following, None
    if kind in ("Succeed", "Wait"):
        effective = paths.select(state.get("InputPath", "$"), raw, context, field="InputPath")
        if kind == "Wait":
            await _wait(ex, state, effective, context)
        next_name = None if kind == "Succeed" else following
        return _output(state, effective, context), next_name, None
    if kind == "Fail":
        error = _fail_field(ex, state, "Error", raw, context)
        cause = _fail_field(ex, state, "Cause", raw, context)
        raise StatesError(error or "", cause or "")
    # An attempt gets the effective input (after Parameters) and the selected one (InputPath).
    attempt: Callable[[Any, Any], Awaitable[Any]]
    if kind == "Pass":
        attempt = lambda effective, _: _pass(state, effective)  # noqa: E731
    elif kind == "Task":
        attempt = lambda effective, selected: run_task(  # noqa: E731
            ex, state, effective, selected, context
        )
    elif kind == "Parallel":
        attempt = lambda effective, _: _parallel(ex, state, effective, context, scope)  # noqa: E731
    elif kind == "Map":
        attempt = lambda effective, _: _map(ex, state, effective, context, scope)  # noqa: E731
    else:
        raise runtime(f"unknown state type {kind!r}")
    try:
        result = await _with_retries(ex, state, context, raw, attempt)
    except StatesError as err:
        if err.execution_timed_out:
            raise
        for catcher in state.get("Catch", []):
            if matches(err.error, catcher["ErrorEquals"]):
                error_output = {"Error": err.error, "Cause": err.cause}
                combined = paths.apply_result(
                    raw, catcher.get("ResultPath"), error_output,
                    default="ResultPath" not in catcher,
                )  # fmt: skip
                return combined, catcher["Next"], err
        raise
    combined = paths.apply_result(
        raw, state.get("ResultPath"), result, default="ResultPath" not in state
    )
    return _output(state, combined, context), following, None


def _output(state: dict[str, Any], value: Any, context: Any) -> Any:
    return paths.select(state.get("OutputPath", "$"), value, context, field="OutputPath")


async def _with_retries(
    ex: Execution,
    state: dict[str, Any],
    context: dict[str, Any],
    raw: Any,
    attempt: Callable[[Any, Any], Awaitable[Any]],
) -> Any:
    retriers: list[dict[str, Any]] = state.get("Retry", [])
    counts = [0] * len(retriers)
    while True:
        try:
            selected = paths.select(state.get("InputPath", "$"), raw, context, field="InputPath")
            if state["Type"] == "Task":
                prepare_task(ex, state, context)
            effective = selected
            if "Parameters" in state and state["Type"] != "Map":
                effective = ex.render(state["Parameters"], selected, context)
            result = await attempt(effective, selected)
            if "ResultSelector" in state:
                result = ex.render(state["ResultSelector"], result, context)
            return result
        except StatesError as err:
            if err.execution_timed_out:
                raise
            index = next(
                (i for i, r in enumerate(retriers) if matches(err.error, r["ErrorEquals"])), None
            )
            if index is None:
                raise
            retrier = retriers[index]
            if counts[index] >= retrier.get("MaxAttempts", 3):
                raise
            delay = (
                float(retrier.get("IntervalSeconds", 1))
                * float(retrier.get("BackoffRate", 2.0)) ** counts[index]
            )
            if "MaxDelaySeconds" in retrier:
                delay = min(delay, float(retrier["MaxDelaySeconds"]))
            if retrier.get("JitterStrategy") == "FULL":
                delay *= ex.ctx.random()
            counts[index] += 1
            context["State"]["RetryCount"] = sum(counts)
            await ex.sleep(delay)


async def _pass(state: dict[str, Any], effective: Any) -> Any:
    return copy.deepcopy(state["Result"]) if "Result" in state else effective


def _fail_field(
    ex: Execution, state: dict[str, Any], field: str, raw: Any, context: Any
) -> str | None:
    if field in state:
        return str(state[field])
    expression = state.get(f"{field}Path")
    if expression is None:
        return None
    value = (
        paths.read(expression, raw, context, what=f"{field}Path")
        if expression.startswith("$")
        else ex.intrinsic(expression, raw, context)
    )
    return value if isinstance(value, str) else str(value)


async def _wait(ex: Execution, state: dict[str, Any], effective: Any, context: Any) -> None:
    if "Seconds" in state or "SecondsPath" in state:
        seconds = state.get("Seconds")
        if seconds is None:
            seconds = paths.read(state["SecondsPath"], effective, context, what="SecondsPath")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise runtime(f"Wait seconds must be a non-negative number, got {seconds!r}")
        await ex.sleep(float(seconds))
        return
    stamp = state.get("Timestamp")
    if stamp is None:
        stamp = paths.read(state["TimestampPath"], effective, context, what="TimestampPath")
    moment = choice.parse_timestamp(stamp)
    if moment is None:
        raise runtime(f"Wait timestamp {stamp!r} is not an RFC 3339 timestamp")
    await ex.sleep(max(0.0, (moment - ex.ctx.now()).total_seconds()))


def _branch_scope(scope: str, context: dict[str, Any], index: int) -> str:
    here = f"{context['State']['Name']}[{index}]"
    return f"{scope}/{here}" if scope else here


async def _parallel(
    ex: Execution, state: dict[str, Any], effective: Any, context: dict[str, Any], scope: str
) -> Any:
    branches = [
        run_machine(ex, branch, copy.deepcopy(effective), None, _branch_scope(scope, context, i))
        for i, branch in enumerate(state["Branches"])
    ]
    return await ex.ctx.gather(*branches, cancel_siblings=ex.cancels_siblings)


def _int_field(state: dict[str, Any], field: str, data: Any, context: Any) -> Any:
    if field in state:
        return state[field]
    if f"{field}Path" in state:
        value = paths.read(state[f"{field}Path"], data, context, what=f"{field}Path")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise runtime(f"{field}Path must give a non-negative number, got {value!r}")
        return value
    return None


async def _map(
    ex: Execution, state: dict[str, Any], effective: Any, context: dict[str, Any], scope: str
) -> Any:
    items = paths.select(state.get("ItemsPath", "$"), effective, context, field="ItemsPath")
    if not isinstance(items, list):
        raise runtime(
            f"Map ItemsPath must select an array, got {type(items).__name__}; fix ItemsPath"
        )
    processor = state.get("ItemProcessor", state.get("Iterator"))
    assert isinstance(processor, dict)
    selector = state.get("ItemSelector", state.get("Parameters"))
    limit = int(_int_field(state, "MaxConcurrency", effective, context) or 0) or len(items)
    tolerated_count = _int_field(state, "ToleratedFailureCount", effective, context)
    tolerated_pct = _int_field(state, "ToleratedFailurePercentage", effective, context)
    tolerant = tolerated_count is not None or tolerated_pct is not None
    results: list[Any] = [None] * len(items)
    failed: list[int] = []
    cursor = [0]

    async def worker() -> None:
        while cursor[0] < len(items):
            index = cursor[0]
            cursor[0] += 1
            extra = {"Map": {"Item": {"Index": index, "Value": items[index]}}}
            item_context = {**context, **extra}
            value = (
                items[index] if selector is None else ex.render(selector, effective, item_context)
            )
            try:
                results[index] = await run_machine(
                    ex, processor, value, extra, _branch_scope(scope, context, index)
                )
            except StatesError as err:
                if not tolerant or err.execution_timed_out:
                    raise
                failed.append(index)
                results[index] = {"Error": err.error, "Cause": err.cause}
                over_count = tolerated_count is not None and len(failed) > tolerated_count
                over_pct = (
                    tolerated_pct is not None and 100 * len(failed) / len(items) > tolerated_pct
                )
                if over_count or over_pct:
                    raise StatesError(
                        TOLERATED_FAILURE_EXCEEDED,
                        f"{len(failed)} of {len(items)} items failed, more than tolerated "
                        f"(count {tolerated_count}, percentage {tolerated_pct}); last: "
                        f"{err.error}: {err.cause}",
                    ) from err

    workers = (worker() for _ in range(min(limit, len(items))))
    await ex.ctx.gather(*workers, cancel_siblings=ex.cancels_siblings)
    return results


def state_machine_workflow(
    name: str, definition: Machine, *, patches: tuple[str, ...] = PATCHES
) -> Callable[[WorkflowContext, Any], Coroutine[Any, Any, Any]]:
    """The workflow function interpreting `definition` (already validated). `patches` leaves
    out changes, to run as an older interpreter did (tests record old histories with it)."""

    async def interpret(ctx: WorkflowContext, input: Any) -> Any:
        ex = Execution(ctx, name, definition, input)
        ex.records_states = RECORD_STATES in patches and ctx.patched(RECORD_STATES)
        ex.cancels_siblings = CANCEL_SIBLINGS in patches and ctx.patched(CANCEL_SIBLINGS)
        try:
            return await run_machine(ex, definition, input)
        except SignalTimeoutError as exc:  # a wait outlived the execution deadline
            raise StatesError(TIMEOUT, str(exc), execution_timed_out=True) from exc

    interpret.__qualname__ = f"asl[{name}]"
    return interpret


def register(
    registry: Registry,
    name: str,
    definition: Machine,
    version: int = 1,
    *,
    patches: tuple[str, ...] = PATCHES,
) -> None:
    """Register `definition` as version `version` of workflow type `name`."""
    registry.workflow(name=name, version=version)(
        state_machine_workflow(name, definition, patches=patches)
    )
