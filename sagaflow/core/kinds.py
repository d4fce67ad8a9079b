"""The one table of message types: for every event and command type, what it is.

A new event or command type gets exactly one row here, and the modules that must handle every
type check themselves against this table when they are imported (and a unit test checks them
all), so a type that is missing anywhere fails at once instead of being silently skipped:

    role        how replay treats the event: it wakes the code (an activation), it records what
                the code did (matched against the code's commands), or neither (bookkeeping)
    describe    what happened, in a few words (the CLI, the API, the UI, replay errors)
    span        the name of the span the orchestrator opens when it records the event, or None
                when the event is recorded under its run's context without a span of its own
    closes      the status the workflow closes with, for the events that close it

Appliers (sagaflow.core.state), read-model folds (sagaflow.readmodel.fold) and spans
(the orchestrator's observer) live next to the state they change, keyed by the same types.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sagaflow.core import messages as m
from sagaflow.core.status import WorkflowStatus


class Role(StrEnum):
    ACTIVATION = "activation"
    """Wakes the workflow code: replay delivers it to the driver."""
    COMMAND = "command"
    """Records a command of the workflow code: replay matches the code's command against it."""
    BOOKKEEPING = "bookkeeping"
    """Neither: recorded by the engine itself (retries, parking, rejections, terminate,
    timeouts); replay skips it."""


@dataclass(frozen=True)
class EventKind:
    role: Role
    describe: Callable[[Any], str]
    """The body in a few words (no seq, no workflow id: callers add what they show)."""
    span: Callable[[Any], str] | None
    """The name of the span recorded with the event, or None when the event gets no span of its
    own. A step's outcome is named after the step by the observer (which knows its name)."""
    closes: WorkflowStatus | None = None


def _short(raw: bytes, limit: int = 120) -> str:
    """A payload for a human line: compact JSON (as recorded, when it is not JSON), cut."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw.decode("utf-8", errors="replace")
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def when(epoch_ms: int | None) -> str:
    """An epoch-ms instant as UTC text, to the millisecond ('-' for none)."""
    if not epoch_ms:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _scheduled(b: m.ActivityScheduled) -> str:
    kind = "compensation" if b.compensation else "activity"
    return f"{kind} {b.activity_name} scheduled on {b.task_queue} (step {b.activity_seq})"


def _attempt_failed(b: m.ActivityAttemptFailed) -> str:
    what = "timed out" if b.timed_out else f"failed: {b.error_type}: {b.message}"
    return (
        f"activity step {b.activity_seq} attempt {b.attempt} {what}; retry at {when(b.retry_at_ms)}"
    )


def _activity_failed(b: m.ActivityFailed) -> str:
    return (
        f"activity step {b.activity_seq} failed for good ({b.reason}) after attempt "
        f"{b.attempt}: {b.error_type}: {b.message}"
    )


def _wait(b: m.SignalWaitStarted) -> str:
    if not b.timeout_at_ms:
        return f"waiting for signal {b.name}"
    return f"waiting for signal {b.name} until {when(b.timeout_at_ms)} (timer {b.timer_seq})"


def _state(b: m.StateTransitioned) -> str:
    where = f" in {b.scope}" if b.scope else ""
    head = f"state {b.state} ({b.state_type}){where} {b.transition}"
    if b.transition == "succeeded":
        head += f" output={_short(b.output)}"
    elif b.transition == "failed":
        head += f": {b.error}: {b.cause}" + (" (caught)" if b.next_state else "")
    return head + (f" -> {b.next_state}" if b.next_state else "")


def _step_outcome_span(
    b: m.ActivityCompleted | m.ActivityFailed | m.ActivityAttemptFailed,
) -> str:
    if isinstance(b, m.ActivityAttemptFailed):
        verb = "timeout" if b.timed_out else "complete"
    elif isinstance(b, m.ActivityFailed) and b.reason == "cancelled":
        verb = "cancel"
    else:
        verb = "complete"
    return f"{verb} step {b.activity_seq}"


EVENT_KINDS: Mapping[type, EventKind] = {
    m.WorkflowStarted: EventKind(
        Role.ACTIVATION,
        lambda b: f"started {b.workflow_type} v{b.version} input={_short(b.input)}",
        lambda b: f"start {b.workflow_type}",
    ),
    m.ActivityScheduled: EventKind(
        Role.COMMAND,
        _scheduled,
        lambda b: f"{'compensate' if b.compensation else 'schedule'} {b.activity_name}",
    ),
    m.ActivityAttemptFailed: EventKind(Role.BOOKKEEPING, _attempt_failed, _step_outcome_span),
    m.ActivityRetried: EventKind(
        Role.BOOKKEEPING,
        lambda b: f"activity step {b.activity_seq} attempt {b.attempt} dispatched",
        lambda b: f"retry step {b.activity_seq}",
    ),
    m.ActivityCompleted: EventKind(
        Role.ACTIVATION,
        lambda b: f"activity step {b.activity_seq} completed: {_short(b.result)}",
        _step_outcome_span,
    ),
    m.ActivityFailed: EventKind(Role.ACTIVATION, _activity_failed, _step_outcome_span),
    m.ActivityHeartbeatRecorded: EventKind(
        Role.BOOKKEEPING,
        lambda b: (
            f"activity step {b.activity_seq} attempt {b.attempt} heartbeat: {_short(b.details)}"
        ),
        None,  # one per throttle interval would drown the trace
    ),
    m.ActivityCancelRequested: EventKind(
        Role.COMMAND,
        lambda b: f"activity step {b.activity_seq} cancellation requested by the workflow",
        lambda b: f"request cancel step {b.activity_seq}",
    ),
    m.TimerStarted: EventKind(
        Role.COMMAND,
        lambda b: f"timer {b.timer_seq} started, fires at {when(b.fire_at_ms)}",
        lambda b: "timer started",
    ),
    m.TimerFired: EventKind(
        Role.ACTIVATION, lambda b: f"timer {b.timer_seq} fired", lambda b: "timer fired"
    ),
    m.TimerCancelled: EventKind(Role.COMMAND, lambda b: f"timer {b.timer_seq} cancelled", None),
    m.SignalReceived: EventKind(
        Role.ACTIVATION,
        lambda b: f"signal {b.name} received: {_short(b.payload)}",
        lambda b: f"signal {b.name}",
    ),
    m.SignalWaitStarted: EventKind(Role.COMMAND, _wait, lambda b: f"wait for signal {b.name}"),
    m.CancelRequested: EventKind(
        Role.ACTIVATION,
        lambda b: f"cancel requested: {b.reason or '(no reason)'}",
        lambda b: "cancel requested",
    ),
    m.MarkerRecorded: EventKind(Role.COMMAND, lambda b: f"patch {b.change_id} recorded", None),
    # The span is opened when the state is left (the observer skips "entered").
    m.StateTransitioned: EventKind(Role.COMMAND, _state, lambda b: f"state {b.state}"),
    m.UpdateAccepted: EventKind(
        Role.ACTIVATION,
        lambda b: f"update {b.name} ({b.update_id}) accepted: {_short(b.args)}",
        lambda b: f"update {b.name}",
    ),
    m.UpdateCompleted: EventKind(
        Role.COMMAND,
        lambda b: (
            f"update {b.update_id} failed: {b.error_type}: {b.message}"
            if b.error_type
            else f"update {b.update_id} completed: {_short(b.result)}"
        ),
        lambda b: "update completed",
    ),
    m.WorkflowCompleted: EventKind(
        Role.COMMAND,
        lambda b: f"COMPLETED result={_short(b.result)}",
        lambda b: "workflow completed",
        WorkflowStatus.COMPLETED,
    ),
    m.WorkflowFailed: EventKind(
        Role.COMMAND,
        lambda b: f"FAILED {b.error_type}: {b.message}",
        lambda b: "workflow failed",
        WorkflowStatus.FAILED,
    ),
    m.WorkflowCancelled: EventKind(
        Role.COMMAND,
        lambda b: f"CANCELLED {b.reason or '(no reason)'}",
        lambda b: "workflow cancelled",
        WorkflowStatus.CANCELLED,
    ),
    m.WorkflowTerminated: EventKind(
        Role.BOOKKEEPING,
        lambda b: f"TERMINATED by {b.by or '(unknown)'}: {b.reason or '(no reason)'}",
        lambda b: "workflow terminated",
        WorkflowStatus.TERMINATED,
    ),
    m.WorkflowTimedOut: EventKind(
        Role.BOOKKEEPING,
        lambda b: f"TIMED OUT: its {b.timeout} timeout passed at {when(b.deadline_ms)}",
        lambda b: f"workflow {b.timeout} timed out",
        WorkflowStatus.TIMED_OUT,
    ),
    m.WorkflowContinuedAsNew: EventKind(
        Role.COMMAND,
        lambda b: f"continued as new run {b.new_run_id} input={_short(b.input)}",
        lambda b: "workflow continued as new",
        WorkflowStatus.CONTINUED_AS_NEW,
    ),
    m.WorkflowParked: EventKind(
        Role.BOOKKEEPING, lambda b: f"PARKED ({b.kind}): {b.message}", lambda b: "workflow parked"
    ),
    m.WorkflowUnparked: EventKind(
        Role.BOOKKEEPING,
        lambda b: "unparked: newly deployed code resumed it",
        lambda b: "workflow unparked",
    ),
    m.CommandRejected: EventKind(
        Role.BOOKKEEPING,
        lambda b: f"REJECTED {b.command_type} ({b.reason}): {b.message}",
        lambda b: f"reject {b.command_type}",
    ),
    m.ChildWorkflowStarted: EventKind(
        Role.COMMAND,
        lambda b: (
            f"child {b.workflow_type} {b.child_workflow_id} started (step {b.child_seq}, "
            f"parent close policy {b.parent_close_policy}) input={_short(b.input)}"
        ),
        lambda b: f"start child {b.workflow_type}",
    ),
    m.ChildWorkflowCompleted: EventKind(
        Role.ACTIVATION,
        lambda b: f"child {b.child_workflow_id} completed: {_short(b.result)}",
        lambda b: f"child step {b.child_seq} completed",
    ),
    m.ChildWorkflowFailed: EventKind(
        Role.ACTIVATION,
        lambda b: f"child {b.child_workflow_id} {b.status}: {b.error_type}: {b.message}",
        lambda b: f"child step {b.child_seq} {b.status}",
    ),
}


def describe(body: m.EventBody) -> str:
    return EVENT_KINDS[type(body)].describe(body)


def span_name(body: m.EventBody) -> str | None:
    """The name of the event's span, or None when it gets none."""
    name = EVENT_KINDS[type(body)].span
    return name(body) if name is not None else None


def of_role(role: Role) -> tuple[type, ...]:
    return tuple(t for t, kind in EVENT_KINDS.items() if kind.role is role)


ACTIVATIONS = of_role(Role.ACTIVATION)
"""Events that wake workflow code."""

COMMAND_EVENTS = of_role(Role.COMMAND)
"""Events that record what workflow code did."""

CLOSING_STATUS: Mapping[type, WorkflowStatus] = {
    t: kind.closes for t, kind in EVENT_KINDS.items() if kind.closes is not None
}


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class CommandKind:
    payload_fields: tuple[str, ...]
    """Fields holding JSON payload bytes (size-limited and checked to be JSON on admission)."""
    describe: Callable[[Any], str]
    reports_activity: bool = False
    """A worker's report about an activity attempt: dropped quietly when stale or late."""


COMMAND_KINDS: Mapping[type, CommandKind] = {
    m.StartWorkflow: CommandKind(
        ("input",), lambda c: f"start {c.workflow_type} input={_short(c.input)}"
    ),
    m.SignalWorkflow: CommandKind(
        ("payload",), lambda c: f"signal {c.name} payload={_short(c.payload)}"
    ),
    m.CancelWorkflow: CommandKind((), lambda c: f"cancel: {c.reason or '(no reason)'}"),
    m.TerminateWorkflow: CommandKind(
        (), lambda c: f"terminate by {c.by or '(unknown)'}: {c.reason or '(no reason)'}"
    ),
    m.CompleteActivity: CommandKind(
        ("result",),
        lambda c: f"activity step {c.activity_seq} attempt {c.attempt} completed",
        reports_activity=True,
    ),
    m.FailActivity: CommandKind(
        ("details",),
        lambda c: f"activity step {c.activity_seq} attempt {c.attempt} failed: {c.error_type}",
        reports_activity=True,
    ),
    m.HeartbeatActivity: CommandKind(
        ("details",),
        lambda c: f"activity step {c.activity_seq} attempt {c.attempt} heartbeat",
        reports_activity=True,
    ),
    m.ReportChildClosed: CommandKind(
        ("result",), lambda c: f"child {c.child_workflow_id} {c.status}"
    ),
    m.QueryWorkflow: CommandKind(("args",), lambda c: f"query {c.name} args={_short(c.args)}"),
    m.UpdateWorkflow: CommandKind(
        ("args",), lambda c: f"update {c.name} ({c.update_id}) args={_short(c.args)}"
    ),
}


def describe_command(command: m.Command) -> str:
    return COMMAND_KINDS[type(command)].describe(command)


def check_covers(table: Mapping[type, Any], union: Any, what: str) -> None:
    """Fail at import when `table` misses (or has extra) types of `union`: a module that must
    handle every message type names the ones it forgot."""
    wanted = set(typing.get_args(union))
    missing = sorted(t.__name__ for t in wanted - set(table))
    extra = sorted(t.__name__ for t in set(table) - wanted)
    if missing or extra:
        raise TypeError(
            f"{what} is out of date: missing {missing or 'nothing'}, unknown {extra or 'nothing'}; "
            "give every type its row (see sagaflow.core.kinds)"
        )


check_covers(EVENT_KINDS, m.EventBody, "sagaflow.core.kinds.EVENT_KINDS")
check_covers(COMMAND_KINDS, m.Command, "sagaflow.core.kinds.COMMAND_KINDS")
if set(CLOSING_STATUS) != set(m.CLOSING_EVENTS):
    raise TypeError("messages.CLOSING_EVENTS and the kinds table disagree on what closes a run")
