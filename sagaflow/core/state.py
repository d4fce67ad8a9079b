"""A workflow's state as the fold of its events: one applier per event type, nothing else
changes state. The engine applies the same appliers live and when rebuilding, so live state
always equals the fold of history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    RetryPolicy,
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
from sagaflow.core.status import CLOSED_STATUSES, WorkflowStatus

RUNNING = WorkflowStatus.RUNNING
PARKED = WorkflowStatus.PARKED
QUARANTINED = WorkflowStatus.QUARANTINED
COMPLETED = WorkflowStatus.COMPLETED
FAILED = WorkflowStatus.FAILED
CANCELLED = WorkflowStatus.CANCELLED
TERMINATED = WorkflowStatus.TERMINATED
TIMED_OUT = WorkflowStatus.TIMED_OUT
CONTINUED_AS_NEW = WorkflowStatus.CONTINUED_AS_NEW
IDLE_AFTER_MS = 60_000
"""Nothing due sooner than this (and no activity in flight): the workflow is idle."""


class ApplyError(Exception):
    """An event does not fit the state it is applied to (the workflow gets quarantined)."""


@dataclass(slots=True)
class ActivityState:
    """An open activity: scheduled and not yet completed or failed for good."""

    seq: int
    name: str
    task_queue: str
    input: bytes
    retry_policy: RetryPolicy
    start_to_close_ms: int
    schedule_to_close_ms: int
    scheduled_at_ms: int
    compensation: bool = False
    attempt: int = 1
    attempt_started_at_ms: int = 0
    retry_at_ms: int | None = None
    """Set while waiting for the backoff before the next attempt."""
    heartbeat_timeout_ms: int = 0
    last_heartbeat_ms: int = 0
    """When the current attempt's last heartbeat was recorded (0: none yet)."""
    heartbeat_details: bytes = b"null"
    """The latest heartbeat details of any attempt, handed to the next one."""
    cancel_requested: bool = False

    def heartbeat_deadline_ms(self) -> int | None:
        """When the running attempt times out for want of a heartbeat (None: no deadline)."""
        if self.heartbeat_timeout_ms <= 0 or self.retry_at_ms is not None:
            return None
        return max(self.attempt_started_at_ms, self.last_heartbeat_ms) + self.heartbeat_timeout_ms

    def next_due_ms(self) -> int | None:
        candidates = []
        if self.retry_at_ms is not None:
            candidates.append(self.retry_at_ms)
        elif self.start_to_close_ms > 0:
            candidates.append(self.attempt_started_at_ms + self.start_to_close_ms)
        heartbeat_deadline = self.heartbeat_deadline_ms()
        if heartbeat_deadline is not None:
            candidates.append(heartbeat_deadline)
        if self.schedule_to_close_ms > 0:
            candidates.append(self.scheduled_at_ms + self.schedule_to_close_ms)
        return min(candidates) if candidates else None


@dataclass(frozen=True, slots=True)
class ChildState:
    """A child workflow this run started that has not reported its close yet."""

    seq: int
    """Seq of its ChildWorkflowStarted event."""
    workflow_id: str
    workflow_type: str
    parent_close_policy: str


@dataclass(slots=True)
class UpdateRecord:
    """An update of this run: accepted, and completed once its UpdateCompleted is recorded."""

    name: str
    request_id: str
    completed: UpdateCompleted | None = None


@dataclass(slots=True)
class WorkflowState:
    """One workflow id's current run, rebuilt from its events."""

    workflow_id: str
    status: str = RUNNING
    run_id: str = ""
    workflow_type: str = ""
    version: int = 0
    random_seed: int = 0
    last_seq: int = 0
    start_command_id: str = ""
    """command_id of the StartWorkflow that created this workflow id (kept across runs)."""
    activities: dict[int, ActivityState] = field(default_factory=dict)
    timers: dict[int, int] = field(default_factory=dict)
    """Open timers: seq -> fire_at_ms."""
    cancel_requested: bool = False
    signal_command_ids: set[str] = field(default_factory=set)
    updates: dict[str, UpdateRecord] = field(default_factory=dict)
    """Updates of this run by update id: what deduplicates a repeated update id."""
    """command_ids of signals received in this run, so a redelivered signal adds nothing."""
    execution_deadline_ms: int = 0
    """When the workflow id times out; 0 = never (kept across runs)."""
    run_deadline_ms: int = 0
    """When the current run times out; 0 = never."""
    run_timeout_ms: int = 0
    parent_workflow_id: str = ""
    """The parent this workflow reports its close to ("" when it is not a child)."""
    parent_run_id: str = ""
    parent_child_seq: int = 0
    children: dict[str, ChildState] = field(default_factory=dict)
    """Children of this run still running, by child workflow id (kept when the run closes, so
    the engine applies their parent close policy)."""
    closed_children: set[str] = field(default_factory=set)
    """Children of this run that reported their close, so a redelivered report adds nothing."""
    parked_kind: str = ""
    parked_message: str = ""
    quarantine_reason: str = ""
    history: list[Event] = field(default_factory=list)
    """The current run's events."""

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    def next_due_ms(self) -> int | None:
        if self.status not in (RUNNING, PARKED):
            return None
        dues = [d for a in self.activities.values() if (d := a.next_due_ms()) is not None]
        dues.extend(self.timers.values())
        deadline = self.deadline()
        if deadline is not None:
            dues.append(deadline[1])
        return min(dues) if dues else None

    def deadline(self) -> tuple[str, int] | None:
        """The workflow's own timeout that comes first: ('execution' | 'run', at ms)."""
        found = [
            (at, kind)
            for kind, at in (
                ("execution", self.execution_deadline_ms),
                ("run", self.run_deadline_ms),
            )
            if at
        ]
        if not found:
            return None
        at, kind = min(found)
        return kind, at

    def is_idle(self, now_ms: int) -> bool:
        """Running with no activity in flight and nothing due within IDLE_AFTER_MS: waiting for
        a signal or a distant timer, so its driver need not be kept between commands."""
        if self.status != RUNNING or self.activities:
            return False
        due = self.next_due_ms()
        return due is None or due - now_ms >= IDLE_AFTER_MS

    def apply(self, event: Event) -> None:
        """Fold one event (its seq already checked). Raises ApplyError if it does not fit."""
        applier = _APPLIERS.get(type(event.body))
        if applier is None:
            raise ApplyError(f"no applier for {type(event.body).__name__}")
        applier(self, event, event.body)
        self.last_seq = event.seq
        if not isinstance(event.body, WorkflowStarted):
            self.history.append(event)

    def quarantine(self, reason: str) -> None:
        self.status = QUARANTINED
        self.quarantine_reason = reason

    def _open_activity(self, seq: int) -> ActivityState:
        found = self.activities.get(seq)
        if found is None:
            raise ApplyError(f"activity seq {seq} is not open in workflow {self.workflow_id!r}")
        return found

    # ------------------------------------------------------------------ appliers

    def _apply_workflow_started(self, event: Event, body: WorkflowStarted) -> None:
        if self.run_id and self.status != CONTINUED_AS_NEW:
            raise ApplyError(f"workflow {self.workflow_id!r} started twice (seq {event.seq})")
        self.status = RUNNING
        self.run_id = event.run_id
        self.workflow_type = body.workflow_type
        self.version = body.version
        self.random_seed = body.random_seed
        if body.command_id:
            self.start_command_id = body.command_id
        self.activities = {}
        self.timers = {}
        self.cancel_requested = False
        self.signal_command_ids = set()
        self.updates = {}
        self.parent_workflow_id = body.parent_workflow_id
        self.parent_run_id = body.parent_run_id
        self.parent_child_seq = body.parent_child_seq
        self.children = {}
        self.closed_children = set()
        self.parked_kind = self.parked_message = ""
        self.execution_deadline_ms = body.execution_deadline_ms
        self.run_timeout_ms = body.run_timeout_ms
        self.run_deadline_ms = (
            event.recorded_at_ms + body.run_timeout_ms if body.run_timeout_ms else 0
        )
        self.history = [event]

    def _apply_activity_scheduled(self, event: Event, body: ActivityScheduled) -> None:
        if body.activity_seq != event.seq:
            raise ApplyError(f"activity_seq {body.activity_seq} != event seq {event.seq}")
        self.activities[body.activity_seq] = ActivityState(
            seq=body.activity_seq,
            name=body.activity_name,
            task_queue=body.task_queue,
            input=body.input,
            retry_policy=body.retry_policy,
            start_to_close_ms=body.start_to_close_ms,
            schedule_to_close_ms=body.schedule_to_close_ms,
            scheduled_at_ms=event.recorded_at_ms,
            compensation=body.compensation,
            attempt_started_at_ms=event.recorded_at_ms,
            heartbeat_timeout_ms=body.heartbeat_timeout_ms,
        )

    def _apply_activity_attempt_failed(self, event: Event, body: ActivityAttemptFailed) -> None:
        self._open_activity(body.activity_seq).retry_at_ms = body.retry_at_ms

    def _apply_activity_retried(self, event: Event, body: ActivityRetried) -> None:
        activity = self._open_activity(body.activity_seq)
        activity.attempt = body.attempt
        activity.retry_at_ms = None
        activity.attempt_started_at_ms = event.recorded_at_ms
        activity.last_heartbeat_ms = 0

    def _apply_activity_heartbeat_recorded(
        self, event: Event, body: ActivityHeartbeatRecorded
    ) -> None:
        activity = self._open_activity(body.activity_seq)
        if body.attempt != activity.attempt:
            raise ApplyError(
                f"heartbeat of attempt {body.attempt} while attempt {activity.attempt} runs"
            )
        activity.last_heartbeat_ms = event.recorded_at_ms
        activity.heartbeat_details = body.details

    def _apply_activity_cancel_requested(self, event: Event, body: ActivityCancelRequested) -> None:
        self._open_activity(body.activity_seq).cancel_requested = True

    def _apply_activity_completed(self, event: Event, body: ActivityCompleted) -> None:
        self._open_activity(body.activity_seq)
        del self.activities[body.activity_seq]

    def _apply_activity_failed(self, event: Event, body: ActivityFailed) -> None:
        self._open_activity(body.activity_seq)
        del self.activities[body.activity_seq]

    def _apply_timer_started(self, event: Event, body: TimerStarted) -> None:
        if body.timer_seq != event.seq:
            raise ApplyError(f"timer_seq {body.timer_seq} != event seq {event.seq}")
        self.timers[body.timer_seq] = body.fire_at_ms

    def _apply_timer_fired(self, event: Event, body: TimerFired) -> None:
        if self.timers.pop(body.timer_seq, None) is None:
            raise ApplyError(f"timer {body.timer_seq} is not open")

    def _apply_timer_cancelled(self, event: Event, body: TimerCancelled) -> None:
        if self.timers.pop(body.timer_seq, None) is None:
            raise ApplyError(f"timer {body.timer_seq} is not open")

    def _apply_signal_received(self, event: Event, body: SignalReceived) -> None:
        if body.command_id:
            self.signal_command_ids.add(body.command_id)

    def _apply_signal_wait_started(self, event: Event, body: SignalWaitStarted) -> None:
        """Nothing to keep: the driver holds the waits (and rebuilds them by replay); the read
        model projects them for people."""

    def _apply_child_workflow_started(self, event: Event, body: ChildWorkflowStarted) -> None:
        if body.child_seq != event.seq:
            raise ApplyError(f"child_seq {body.child_seq} != event seq {event.seq}")
        if body.child_workflow_id in self.children:
            raise ApplyError(f"child {body.child_workflow_id!r} started twice in one run")
        self.children[body.child_workflow_id] = ChildState(
            body.child_seq, body.child_workflow_id, body.workflow_type, body.parent_close_policy
        )

    def _apply_child_workflow_completed(self, event: Event, body: ChildWorkflowCompleted) -> None:
        self._close_child(body.child_workflow_id, body.child_seq)

    def _apply_child_workflow_failed(self, event: Event, body: ChildWorkflowFailed) -> None:
        self._close_child(body.child_workflow_id, body.child_seq)

    def _close_child(self, child_workflow_id: str, child_seq: int) -> None:
        child = self.children.pop(child_workflow_id, None)
        if child is None or child.seq != child_seq:
            raise ApplyError(
                f"child {child_workflow_id!r} (step {child_seq}) is not open in workflow "
                f"{self.workflow_id!r}"
            )
        self.closed_children.add(child_workflow_id)

    def _apply_cancel_requested(self, event: Event, body: CancelRequested) -> None:
        self.cancel_requested = True

    def _apply_update_accepted(self, event: Event, body: UpdateAccepted) -> None:
        if body.update_id in self.updates:
            raise ApplyError(f"update {body.update_id!r} accepted twice (seq {event.seq})")
        self.updates[body.update_id] = UpdateRecord(body.name, body.request_id)

    def _apply_update_completed(self, event: Event, body: UpdateCompleted) -> None:
        record = self.updates.get(body.update_id)
        if record is None or record.completed is not None:
            raise ApplyError(f"update {body.update_id!r} completed but not pending")
        record.completed = body

    def _apply_marker_recorded(self, event: Event, body: MarkerRecorded) -> None:
        pass

    def _apply_state_transitioned(self, event: Event, body: StateTransitioned) -> None:
        pass  # what views show; the engine's own bookkeeping does not change

    def _apply_workflow_completed(self, event: Event, body: WorkflowCompleted) -> None:
        self._close(COMPLETED)

    def _apply_workflow_failed(self, event: Event, body: WorkflowFailed) -> None:
        self._close(FAILED)

    def _apply_workflow_cancelled(self, event: Event, body: WorkflowCancelled) -> None:
        self._close(CANCELLED)

    def _apply_workflow_terminated(self, event: Event, body: WorkflowTerminated) -> None:
        self._close(TERMINATED)

    def _apply_workflow_timed_out(self, event: Event, body: WorkflowTimedOut) -> None:
        self._close(TIMED_OUT)

    def _apply_workflow_continued_as_new(self, event: Event, body: WorkflowContinuedAsNew) -> None:
        self._close(CONTINUED_AS_NEW)

    def _apply_workflow_parked(self, event: Event, body: WorkflowParked) -> None:
        self.status = PARKED
        self.parked_kind = body.kind
        self.parked_message = body.message

    def _apply_workflow_unparked(self, event: Event, body: WorkflowUnparked) -> None:
        if self.status != PARKED:
            raise ApplyError("WorkflowUnparked for a workflow that is not parked")
        self.status = RUNNING
        self.parked_kind = self.parked_message = ""

    def _apply_command_rejected(self, event: Event, body: CommandRejected) -> None:
        raise ApplyError("a rejection (seq 0) is not part of a history")

    def _close(self, status: str) -> None:
        if self.status not in (RUNNING, PARKED):
            raise ApplyError(f"workflow {self.workflow_id!r} closed while {self.status}")
        self.status = status
        self.activities = {}
        self.timers = {}


_APPLIERS: dict[type, Callable[[WorkflowState, Event, Any], None]] = {
    WorkflowStarted: WorkflowState._apply_workflow_started,
    ActivityScheduled: WorkflowState._apply_activity_scheduled,
    ActivityAttemptFailed: WorkflowState._apply_activity_attempt_failed,
    ActivityRetried: WorkflowState._apply_activity_retried,
    ActivityCompleted: WorkflowState._apply_activity_completed,
    ActivityFailed: WorkflowState._apply_activity_failed,
    ActivityHeartbeatRecorded: WorkflowState._apply_activity_heartbeat_recorded,
    ActivityCancelRequested: WorkflowState._apply_activity_cancel_requested,
    TimerStarted: WorkflowState._apply_timer_started,
    TimerFired: WorkflowState._apply_timer_fired,
    TimerCancelled: WorkflowState._apply_timer_cancelled,
    SignalReceived: WorkflowState._apply_signal_received,
    SignalWaitStarted: WorkflowState._apply_signal_wait_started,
    CancelRequested: WorkflowState._apply_cancel_requested,
    MarkerRecorded: WorkflowState._apply_marker_recorded,
    StateTransitioned: WorkflowState._apply_state_transitioned,
    UpdateAccepted: WorkflowState._apply_update_accepted,
    UpdateCompleted: WorkflowState._apply_update_completed,
    WorkflowCompleted: WorkflowState._apply_workflow_completed,
    WorkflowFailed: WorkflowState._apply_workflow_failed,
    WorkflowCancelled: WorkflowState._apply_workflow_cancelled,
    WorkflowTerminated: WorkflowState._apply_workflow_terminated,
    WorkflowTimedOut: WorkflowState._apply_workflow_timed_out,
    WorkflowContinuedAsNew: WorkflowState._apply_workflow_continued_as_new,
    WorkflowParked: WorkflowState._apply_workflow_parked,
    WorkflowUnparked: WorkflowState._apply_workflow_unparked,
    CommandRejected: WorkflowState._apply_command_rejected,
    ChildWorkflowStarted: WorkflowState._apply_child_workflow_started,
    ChildWorkflowCompleted: WorkflowState._apply_child_workflow_completed,
    ChildWorkflowFailed: WorkflowState._apply_child_workflow_failed,
}
check_covers(_APPLIERS, EventBody, "sagaflow.core.state appliers")
