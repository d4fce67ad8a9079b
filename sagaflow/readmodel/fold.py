"""The read model's fold: one workflow row, advanced by one event at a time.

Pure (no Kafka, no Postgres): the projector loads the rows a batch touches, folds the batch's
events into them here, and writes them back in the same transaction. An event whose seq is not
above the row's `last_seq` is skipped, which is what makes a replay of the topic change nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sagaflow.core import kinds
from sagaflow.core.kinds import check_covers
from sagaflow.core.messages import (
    ActivityAttemptFailed,
    ActivityCancelRequested,
    ActivityCompleted,
    ActivityFailed,
    ActivityHeartbeatRecorded,
    ActivityRetried,
    ActivityScheduled,
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    CommandRejected,
    Event,
    EventBody,
    MarkerRecorded,
    SignalReceived,
    SignalWaitStarted,
    StateTransitioned,
    TimerCancelled,
    TimerFired,
    TimerStarted,
    UpdateAccepted,
    UpdateCompleted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowParked,
    WorkflowStarted,
    WorkflowTerminated,
    WorkflowTimedOut,
    WorkflowUnparked,
)
from sagaflow.core.status import LISTED_STATUSES, WorkflowStatus

STATUSES = LISTED_STATUSES


def json_payload(raw: bytes) -> Any:
    """A payload's JSON value. Payloads are JSON by contract; one that is not is kept as text
    so the event is still projected and an operator can see what was sent."""
    try:
        return json.loads(raw)
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return {"undecodable_payload": raw.decode("utf-8", errors="replace")}


def body_json(body: EventBody) -> dict[str, Any]:
    """An event body as JSON for the history table: its fields, with payload bytes parsed."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(body):
        value = getattr(body, f.name)
        if isinstance(value, bytes):
            out[f.name] = json_payload(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = dataclasses.asdict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def event_time(recorded_at_ms: int) -> datetime:
    return datetime.fromtimestamp(recorded_at_ms / 1000, UTC)


@dataclass
class WorkflowRow:
    """One row of sagaflow_workflows, as Python values."""

    workflow_id: str
    run_id: str
    type: str
    version: int
    status: str
    created_at: datetime
    updated_at: datetime
    last_seq: int
    input: Any = None
    result: Any = None
    error: Any = None
    current_step: dict[str, Any] | None = None
    pending_activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_timers: list[dict[str, Any]] = field(default_factory=list)
    received_signals: list[dict[str, Any]] = field(default_factory=list)
    signal_waits: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    """Signals the code waits for now, oldest first: [{name, seq, since_ms, timer_seq,
    timeout_at_ms, description}] (timeout 0: waits for ever; description: "waiting for signal
    NAME until T")."""
    cancel_requested: bool = False
    parked: dict[str, Any] | None = None
    parent: dict[str, Any] | None = None
    """{workflow_id, run_id, child_seq} of the parent, for a child workflow."""
    pending_children: list[dict[str, Any]] = field(default_factory=list)
    """Children of the current run still running, oldest first: [{workflow_id, type, seq,
    parent_close_policy, since_ms}]."""
    state_path: dict[str, Any] | None = None
    """A state machine's path so far (see `_apply_state_transitioned`); None for a workflow
    that records no states."""


def _new_row(event: Event) -> WorkflowRow:
    # A workflow's first event is WorkflowStarted; the defaults only matter if the topic was
    # trimmed below it, and then the row still shows everything recorded after.
    at = event_time(event.recorded_at_ms)
    return WorkflowRow(event.workflow_id, event.run_id, "", 0, WorkflowStatus.RUNNING, at, at, 0)


def apply_event(row: WorkflowRow | None, event: Event) -> WorkflowRow | None:
    """`row` advanced by `event`; the same row when the event was already folded in.

    Rejections (seq 0) are not part of any history and never touch a row.
    """
    if event.seq <= 0:
        return row
    if row is None:
        row = _new_row(event)
    elif event.seq <= row.last_seq:
        return row
    row.last_seq = event.seq
    row.updated_at = event_time(event.recorded_at_ms)
    _APPLIERS[type(event.body)](row, event)
    return row


def _apply_nothing(row: WorkflowRow, event: Event) -> None:
    """The event changes nothing the row shows (a patch marker; a rejection never gets here)."""


def _apply_workflow_started(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, WorkflowStarted)
    if not body.continued_from_run_id:
        row.created_at = event_time(event.recorded_at_ms)
    row.run_id = event.run_id
    row.type = body.workflow_type
    row.version = body.version
    row.status = WorkflowStatus.RUNNING
    row.pending_children = []
    if body.parent_workflow_id:
        row.parent = {
            "workflow_id": body.parent_workflow_id,
            "run_id": body.parent_run_id,
            "child_seq": body.parent_child_seq,
        }
    row.input = json_payload(body.input)
    # A new run (continue-as-new) starts with a clean slate; signals are per run too.
    row.result = row.error = row.current_step = row.parked = row.state_path = None
    row.pending_activities = {}
    row.pending_timers = []
    row.received_signals = []
    row.signal_waits = []
    row.updates = []
    row.cancel_requested = False


def _apply_activity_scheduled(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ActivityScheduled)
    step = {
        "activity_seq": body.activity_seq,
        "name": body.activity_name,
        "task_queue": body.task_queue,
        "attempt": 1,
        "state": "scheduled",
        "compensation": body.compensation,
    }
    row.pending_activities[str(body.activity_seq)] = step
    row.current_step = dict(step)


def _update_step(row: WorkflowRow, activity_seq: int, *, done: bool, **changes: Any) -> None:
    key = str(activity_seq)
    step = row.pending_activities.get(key)
    if step is not None:
        step.update(changes)
        if done:
            del row.pending_activities[key]
    if row.current_step is not None and row.current_step.get("activity_seq") == activity_seq:
        row.current_step.update(changes)


def _apply_activity_attempt_failed(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ActivityAttemptFailed)
    _update_step(
        row,
        body.activity_seq,
        done=False,
        attempt=body.attempt,
        state="backing_off",
        last_error={"type": body.error_type, "message": body.message, "timed_out": body.timed_out},
        retry_at_ms=body.retry_at_ms,
    )


def _apply_activity_retried(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ActivityRetried)
    _update_step(row, body.activity_seq, done=False, attempt=body.attempt, state="scheduled")


def _apply_activity_heartbeat_recorded(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ActivityHeartbeatRecorded)
    _update_step(
        row,
        body.activity_seq,
        done=False,
        last_heartbeat_ms=event.recorded_at_ms,
        heartbeat_details=json_payload(body.details),
    )


def _apply_activity_cancel_requested(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ActivityCancelRequested)
    _update_step(row, body.activity_seq, done=False, cancel_requested=True)


def _apply_activity_completed(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ActivityCompleted)
    _update_step(row, body.activity_seq, done=True, attempt=body.attempt, state="completed")


def _apply_activity_failed(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ActivityFailed)
    _update_step(
        row,
        body.activity_seq,
        done=True,
        attempt=body.attempt,
        state="failed",
        last_error={"type": body.error_type, "message": body.message, "reason": body.reason},
    )


def _apply_timer_started(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, TimerStarted)
    row.pending_timers = [t for t in row.pending_timers if t["timer_seq"] != body.timer_seq]
    row.pending_timers.append({"timer_seq": body.timer_seq, "fire_at_ms": body.fire_at_ms})


def _drop_timer(row: WorkflowRow, timer_seq: int) -> None:
    row.pending_timers = [t for t in row.pending_timers if t["timer_seq"] != timer_seq]


def _apply_timer_fired(row: WorkflowRow, event: Event) -> None:
    assert isinstance(event.body, TimerFired)
    _drop_timer(row, event.body.timer_seq)
    _drop_waits_on(row, event.body.timer_seq)  # the wait timed out


def _apply_timer_cancelled(row: WorkflowRow, event: Event) -> None:
    assert isinstance(event.body, TimerCancelled)
    _drop_timer(row, event.body.timer_seq)
    _drop_waits_on(row, event.body.timer_seq)  # the wait was abandoned


def _drop_waits_on(row: WorkflowRow, timer_seq: int) -> None:
    row.signal_waits = [w for w in row.signal_waits if w["timer_seq"] != timer_seq]


def _apply_signal_wait_started(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, SignalWaitStarted)
    row.signal_waits.append(
        {
            "name": body.name,
            "seq": event.seq,
            "since_ms": event.recorded_at_ms,
            "timer_seq": body.timer_seq,
            "timeout_at_ms": body.timeout_at_ms,
            "description": kinds.describe(body),
        }
    )


def _apply_signal_received(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, SignalReceived)
    row.received_signals.append(
        {
            "name": body.name,
            "seq": event.seq,
            "command_id": body.command_id,
            "recorded_at_ms": event.recorded_at_ms,
        }
    )
    # The driver hands a signal to the oldest waiter for its name (none: it is buffered).
    for i, wait in enumerate(row.signal_waits):
        if wait["name"] == body.name:
            del row.signal_waits[i]
            break


def _apply_update_accepted(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, UpdateAccepted)
    row.updates.append(
        {
            "update_id": body.update_id,
            "name": body.name,
            "seq": event.seq,
            "args": json_payload(body.args),
            "status": "running",
            "recorded_at_ms": event.recorded_at_ms,
        }
    )


def _apply_update_completed(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, UpdateCompleted)
    for update in row.updates:
        if update["update_id"] == body.update_id:
            if body.error_type:
                update["status"] = "failed"
                update["error"] = {"type": body.error_type, "message": body.message}
            else:
                update["status"] = "completed"
                update["result"] = json_payload(body.result)


def _apply_cancel_requested(row: WorkflowRow, event: Event) -> None:
    row.cancel_requested = True
    # Cancelling throws into every await of the run, so every wait is abandoned; code that
    # catches the cancel and waits again records a new wait.
    row.signal_waits = []


def _apply_state_transitioned(row: WorkflowRow, event: Event) -> None:
    """The state path: `visited` (state names in the order first entered), `active` (states
    entered and not yet left, [{state, scope}], newest last), `current` (the newest active
    state's name) and `failed` (the state whose uncaught error is failing the run: the innermost
    one, kept until a state around it succeeds or catches)."""
    body = event.body
    assert isinstance(body, StateTransitioned)
    path = row.state_path or {
        "visited": [],
        "active": [],
        "current": None,
        "failed": None,
        "failed_scope": None,
    }
    here = {"state": body.state, "scope": body.scope}
    if body.transition == "entered":
        if body.state not in path["visited"]:
            path["visited"].append(body.state)
        path["active"].append(here)
    else:
        if here in path["active"]:
            # the newest matching entry: a Map runs the same state once per item
            del path["active"][len(path["active"]) - 1 - path["active"][::-1].index(here)]
        failed_scope = path["failed_scope"]
        if body.transition == "failed" and not body.next_state:
            if path["failed"] is None:
                path["failed"], path["failed_scope"] = body.state, body.scope
        elif body.transition != "cancelled" and failed_scope is not None:
            around = not body.scope or failed_scope == body.scope
            if around or failed_scope.startswith(body.scope + "/"):
                path["failed"] = path["failed_scope"] = None
    path["current"] = path["active"][-1]["state"] if path["active"] else None
    row.state_path = path


def _apply_workflow_parked(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, WorkflowParked)
    row.status = WorkflowStatus.PARKED
    row.parked = {"kind": body.kind, "message": body.message, "seq": event.seq}


def _apply_workflow_unparked(row: WorkflowRow, event: Event) -> None:
    row.status = WorkflowStatus.RUNNING
    row.parked = None


def _close(row: WorkflowRow, status: str) -> None:
    row.status = status
    row.pending_activities = {}
    row.pending_timers = []
    row.signal_waits = []
    row.parked = None
    # Its parent close policy has been applied: the children left are no longer its to wait on.
    row.pending_children = []
    if row.state_path is not None:
        row.state_path = {**row.state_path, "active": [], "current": None}


def _apply_workflow_completed(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, WorkflowCompleted)
    _close(row, WorkflowStatus.COMPLETED)
    row.result = json_payload(body.result)


def _apply_workflow_failed(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, WorkflowFailed)
    _close(row, WorkflowStatus.FAILED)
    row.error = {
        "type": body.error_type,
        "message": body.message,
        "details": json_payload(body.details),
    }


def _apply_workflow_cancelled(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, WorkflowCancelled)
    _close(row, WorkflowStatus.CANCELLED)
    row.error = {"type": "cancelled", "message": body.reason, "details": None}


def _apply_workflow_terminated(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, WorkflowTerminated)
    _close(row, WorkflowStatus.TERMINATED)
    row.error = {"type": "terminated", "message": body.reason, "by": body.by, "details": None}


def _apply_workflow_timed_out(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, WorkflowTimedOut)
    _close(row, WorkflowStatus.TIMED_OUT)
    row.error = {
        "type": "timed_out",
        "message": f"its {body.timeout} timeout passed",
        "timeout": body.timeout,
        "deadline_ms": body.deadline_ms,
        "details": None,
    }


def _apply_workflow_continued_as_new(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, WorkflowContinuedAsNew)
    _close(row, WorkflowStatus.CONTINUED_AS_NEW)
    row.result = {"continued_as_new": {"new_run_id": body.new_run_id}}


def _apply_child_workflow_started(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ChildWorkflowStarted)
    row.pending_children.append(
        {
            "workflow_id": body.child_workflow_id,
            "type": body.workflow_type,
            "seq": body.child_seq,
            "parent_close_policy": body.parent_close_policy,
            "since_ms": event.recorded_at_ms,
        }
    )


def _apply_child_closed(row: WorkflowRow, event: Event) -> None:
    body = event.body
    assert isinstance(body, ChildWorkflowCompleted | ChildWorkflowFailed)
    row.pending_children = [c for c in row.pending_children if c["seq"] != body.child_seq]


_APPLIERS: dict[type[Any], Callable[[WorkflowRow, Event], None]] = {
    WorkflowStarted: _apply_workflow_started,
    ActivityScheduled: _apply_activity_scheduled,
    ActivityAttemptFailed: _apply_activity_attempt_failed,
    ActivityRetried: _apply_activity_retried,
    ActivityCompleted: _apply_activity_completed,
    ActivityFailed: _apply_activity_failed,
    ActivityHeartbeatRecorded: _apply_activity_heartbeat_recorded,
    ActivityCancelRequested: _apply_activity_cancel_requested,
    TimerStarted: _apply_timer_started,
    TimerFired: _apply_timer_fired,
    TimerCancelled: _apply_timer_cancelled,
    SignalReceived: _apply_signal_received,
    UpdateAccepted: _apply_update_accepted,
    UpdateCompleted: _apply_update_completed,
    SignalWaitStarted: _apply_signal_wait_started,
    CancelRequested: _apply_cancel_requested,
    StateTransitioned: _apply_state_transitioned,
    WorkflowParked: _apply_workflow_parked,
    WorkflowUnparked: _apply_workflow_unparked,
    WorkflowCompleted: _apply_workflow_completed,
    WorkflowFailed: _apply_workflow_failed,
    WorkflowCancelled: _apply_workflow_cancelled,
    WorkflowTerminated: _apply_workflow_terminated,
    WorkflowTimedOut: _apply_workflow_timed_out,
    WorkflowContinuedAsNew: _apply_workflow_continued_as_new,
    MarkerRecorded: _apply_nothing,
    CommandRejected: _apply_nothing,
    ChildWorkflowStarted: _apply_child_workflow_started,
    ChildWorkflowCompleted: _apply_child_closed,
    ChildWorkflowFailed: _apply_child_closed,
}
check_covers(_APPLIERS, EventBody, "sagaflow.readmodel.fold appliers")
