"""The records that cross the core's boundary: commands in, events and effects out.

Commands are imperative and come from outside (clients, the API, the CLI, workers, other
workflows). Events are past tense and written only by the orchestrator; a workflow's state is
the fold of its events. Effects (an activity task, a command to another workflow, a reply to a
waiting caller) are what a decision asks of the world: the orchestrator produces them in the
same transaction as the events that caused them. Payloads (`input`, `result`, `payload`,
`details`) are JSON encoded as UTF-8 bytes and stay bytes inside the core, so what was received
is exactly what is recorded.

Every record here has exactly one Avro schema in schemas/avro/ (see sagaflow.codec).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class StartWorkflow:
    workflow_id: str
    workflow_type: str
    input: bytes
    """JSON payload handed to the workflow function."""
    version: int | None = None
    """None starts the newest registered version of the type."""
    command_id: str = ""
    """Chosen by the sender, derived from what is started (see `start_command_id`), so a
    repeated identical start is the same command; echoed in a rejection. The engine answers a
    start whose command_id equals the workflow's recorded one with nothing (already started)."""
    execution_timeout_ms: int = 0
    """The whole workflow id, across continue-as-new runs, times out this long after it
    starts; 0 = never. A timed-out workflow closes at once and runs no more code."""
    run_timeout_ms: int = 0
    """Each run times out this long after it starts; 0 = never."""
    parent_workflow_id: str = ""
    """Set when a parent workflow starts this one as its child (command schema v5): the child
    records its parent and reports its close back to it."""
    parent_run_id: str = ""
    parent_child_seq: int = 0
    """Seq of the parent's ChildWorkflowStarted event."""


@dataclass(frozen=True, slots=True)
class SignalWorkflow:
    workflow_id: str
    name: str
    payload: bytes
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class CancelWorkflow:
    workflow_id: str
    reason: str = ""
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class TerminateWorkflow:
    """Stop a workflow now: no more workflow code runs (so no compensation), its pending
    activity tasks and timers are abandoned, and it closes as 'terminated' with who and why.
    Unlike CancelWorkflow, the code is not asked; use it for a workflow that is stuck."""

    workflow_id: str
    reason: str
    by: str = ""
    """Who terminated it (a user, 'api', a parent workflow); recorded with the reason."""
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class CompleteActivity:
    workflow_id: str
    run_id: str
    activity_seq: int
    attempt: int
    result: bytes
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class FailActivity:
    workflow_id: str
    run_id: str
    activity_seq: int
    attempt: int
    error_type: str
    message: str
    retryable: bool
    details: bytes = b"null"
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class HeartbeatActivity:
    workflow_id: str
    run_id: str
    activity_seq: int
    attempt: int
    details: bytes = b"null"
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class ReportChildClosed:
    """A child workflow closed: its outcome, addressed to its parent (`workflow_id`).

    Sent by the child's engine as a CommandToWorkflow effect in the transaction of the child's
    closing event (or of the rejection of its start, status 'start_failed'). The parent records
    it once as ChildWorkflowCompleted or ChildWorkflowFailed; a redelivered report decides
    nothing, and one for a child the parent's run did not start is rejected as 'child_unknown'.
    """

    workflow_id: str
    """The parent's workflow id."""
    child_workflow_id: str
    child_run_id: str
    status: str
    """'completed', 'failed', 'cancelled', 'terminated' or 'start_failed' (the child could not
    be started: its id exists, or its type or version is unknown)."""
    result: bytes = b"null"
    error_type: str = ""
    message: str = ""
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class QueryWorkflow:
    """Read a workflow's state through one of its registered query handlers. Answered by the
    orchestrator that owns the workflow with a ReplyToCaller (reply_to = request_id); never
    recorded."""

    workflow_id: str
    name: str
    args: bytes
    """JSON payload handed to the query handler."""
    request_id: str
    """Chosen by the caller: the reply is keyed by it and carries it as its command_id."""
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class UpdateWorkflow:
    """A signal that returns a result: validated first (a rejection records nothing), then
    recorded (UpdateAccepted ... UpdateCompleted) and answered with a ReplyToCaller."""

    workflow_id: str
    name: str
    args: bytes
    update_id: str
    """Deduplicates: a repeated update id is answered with the first one's recorded result."""
    request_id: str
    command_id: str = ""


Command: TypeAlias = (
    StartWorkflow
    | SignalWorkflow
    | CancelWorkflow
    | TerminateWorkflow
    | CompleteActivity
    | FailActivity
    | HeartbeatActivity
    | ReportChildClosed
    | QueryWorkflow
    | UpdateWorkflow
)

WorkflowCommand: TypeAlias = (
    StartWorkflow | SignalWorkflow | CancelWorkflow | TerminateWorkflow | ReportChildClosed
)
"""What one workflow may send another (start a child, signal, cancel, report a child's close)."""

# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_interval_ms: int = 1_000
    backoff_coefficient: float = 2.0
    maximum_interval_ms: int = 100_000
    maximum_attempts: int = 0
    """0 means unlimited (bounded by schedule_to_close)."""
    non_retryable_error_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkflowStarted:
    workflow_type: str
    version: int
    input: bytes
    random_seed: int
    """Derived from (workflow_id, run_id) by the shell; feeds ctx.random() and ctx.uuid4()."""
    command_id: str = ""
    """The creating StartWorkflow's command_id; a continued run carries it on."""
    continued_from_run_id: str = ""
    execution_deadline_ms: int = 0
    """When the workflow id times out (the same for every run it continues into); 0 = never."""
    run_timeout_ms: int = 0
    """This run times out this long after this event; 0 = never. Carried to continued runs."""
    parent_workflow_id: str = ""
    """The parent workflow, when this one was started as a child (event schema v7); a continued
    run keeps it, so the last run reports the close."""
    parent_run_id: str = ""
    parent_child_seq: int = 0


@dataclass(frozen=True, slots=True)
class ActivityScheduled:
    activity_seq: int
    activity_name: str
    task_queue: str
    input: bytes
    retry_policy: RetryPolicy
    start_to_close_ms: int
    """Per-attempt deadline; 0 = none."""
    schedule_to_close_ms: int
    """Deadline over all attempts; 0 = none."""
    compensation: bool = False
    """True when a saga runs this activity to undo an earlier step."""
    heartbeat_timeout_ms: int = 0
    """An attempt that goes this long without a recorded heartbeat times out; 0 = none."""


@dataclass(frozen=True, slots=True)
class ActivityAttemptFailed:
    activity_seq: int
    attempt: int
    error_type: str
    message: str
    timed_out: bool
    retry_at_ms: int
    """When the next attempt is dispatched (a durable timer)."""


@dataclass(frozen=True, slots=True)
class ActivityHeartbeatRecorded:
    """The running attempt reported progress: its heartbeat deadline moves forward, and
    `details` are handed to later attempts (ActivityContext.heartbeat_details) so a retry can
    resume where this one got to. Wakes no workflow code."""

    activity_seq: int
    attempt: int
    details: bytes


@dataclass(frozen=True, slots=True)
class ActivityCancelRequested:
    """Workflow code asked to cancel a running activity. The worker running it learns this
    through the activity-cancels topic; the activity's next report settles it."""

    activity_seq: int


@dataclass(frozen=True, slots=True)
class ActivityRetried:
    """The next attempt was dispatched (its task produced in the same transaction)."""

    activity_seq: int
    attempt: int


@dataclass(frozen=True, slots=True)
class ActivityCompleted:
    activity_seq: int
    attempt: int
    result: bytes


@dataclass(frozen=True, slots=True)
class ActivityFailed:
    """Final: no more attempts. The workflow's await raises ActivityError."""

    activity_seq: int
    attempt: int
    error_type: str
    message: str
    details: bytes
    reason: str
    """'non_retryable', 'attempts_exhausted', 'schedule_to_close_timeout' or 'cancelled' (the
    workflow cancelled it: ActivityCancelRequested, then the attempt ended)."""


@dataclass(frozen=True, slots=True)
class TimerStarted:
    timer_seq: int
    fire_at_ms: int


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer_seq: int


@dataclass(frozen=True, slots=True)
class TimerCancelled:
    timer_seq: int


@dataclass(frozen=True, slots=True)
class SignalReceived:
    name: str
    payload: bytes
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class SignalWaitStarted:
    """Workflow code began waiting for a signal that had not arrived yet. It ends when the
    signal arrives, its timeout timer fires, the wait is abandoned (cancel) or the run closes.

    Recorded since event schema v3; histories recorded before lack it and replay unchanged
    (replay accepts a wait the history did not record, never one recorded but not made)."""

    name: str
    timer_seq: int = 0
    """Seq of the TimerStarted that bounds the wait; 0 when it has no timeout."""
    timeout_at_ms: int = 0
    """When the wait gives up (that timer's fire time); 0 when never."""


class ParentClosePolicy(StrEnum):
    """What happens to a running child when its parent's run closes (completes, fails, is
    cancelled or terminated, or continues as new)."""

    TERMINATE = "terminate"
    """The child is terminated: stopped at once, nothing compensated."""
    REQUEST_CANCEL = "request_cancel"
    """The child gets a CancelWorkflow: its code may compensate and close as cancelled."""
    ABANDON = "abandon"
    """The child runs on; its outcome no longer reaches anyone."""


@dataclass(frozen=True, slots=True)
class ChildWorkflowStarted:
    """Workflow code started a child workflow. The StartWorkflow for it (carrying this run as
    its parent) is produced in the same transaction; the child's outcome comes back as
    ChildWorkflowCompleted or ChildWorkflowFailed. Since event schema v7."""

    child_seq: int
    child_workflow_id: str
    workflow_type: str
    version: int
    """0: the newest registered version when the child starts."""
    input: bytes
    parent_close_policy: str
    """A ParentClosePolicy value."""


@dataclass(frozen=True, slots=True)
class ChildWorkflowCompleted:
    """A child reported that it completed; the parent's await returns `result`."""

    child_seq: int
    child_workflow_id: str
    child_run_id: str
    result: bytes


@dataclass(frozen=True, slots=True)
class ChildWorkflowFailed:
    """A child closed without completing (or could not start); the parent's await raises
    ChildWorkflowError."""

    child_seq: int
    child_workflow_id: str
    child_run_id: str
    status: str
    """'failed', 'cancelled', 'terminated' or 'start_failed'."""
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class CancelRequested:
    reason: str


@dataclass(frozen=True, slots=True)
class UpdateAccepted:
    """An update passed its validator; its handler runs as workflow code from here."""

    update_id: str
    name: str
    args: bytes
    request_id: str
    """The caller waiting for the result (answered when UpdateCompleted is recorded)."""


@dataclass(frozen=True, slots=True)
class UpdateCompleted:
    """The update handler returned (error_type "") or raised a FailureError."""

    update_id: str
    result: bytes
    error_type: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class MarkerRecorded:
    """A `patched(change_id)` decision, so replay takes the same branch forever."""

    change_id: str


@dataclass(frozen=True, slots=True)
class StateTransitioned:
    """Workflow code entered or left one of its named states (`ctx.record_state`): a state
    machine's state. A decision of the code, so replay matches it; it changes no engine state,
    only what views show (the read model's state path)."""

    state: str
    state_type: str
    """What kind of state it is (for a state machine: 'Task', 'Choice', 'Parallel', ...)."""
    transition: str
    """'entered', 'succeeded', 'failed' or 'cancelled' (a sibling failed, or the run was)."""
    scope: str = ""
    """Where the state ran: "" at the top, else its enclosing branch, e.g. "Fan[2]" (item 2 of
    Map state Fan) or "Both[0]/Fan[1]"."""
    output: bytes = b"null"
    """JSON: the state's output when it succeeded."""
    error: str = ""
    cause: str = ""
    next_state: str = ""
    """The state run next ("" when its branch or the run ended); a failed state with a next
    state had its error caught."""


@dataclass(frozen=True, slots=True)
class WorkflowCompleted:
    result: bytes


@dataclass(frozen=True, slots=True)
class WorkflowFailed:
    error_type: str
    message: str
    details: bytes


@dataclass(frozen=True, slots=True)
class WorkflowCancelled:
    reason: str


@dataclass(frozen=True, slots=True)
class WorkflowTerminated:
    """Closed by a TerminateWorkflow command: no workflow code ran for it, so nothing was
    compensated and pending activities and timers were abandoned."""

    reason: str
    by: str = ""


@dataclass(frozen=True, slots=True)
class WorkflowTimedOut:
    """The workflow's execution or run timeout passed: it closed at once, no more code ran
    (nothing was compensated), its pending activities and timers were abandoned."""

    timeout: str
    """'execution' (the whole workflow id) or 'run' (this run)."""
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class WorkflowContinuedAsNew:
    new_run_id: str
    input: bytes


@dataclass(frozen=True, slots=True)
class WorkflowParked:
    """Workflow code hit a bug or a nondeterminism; the workflow waits for fixed code."""

    kind: str
    """'nondeterminism' or 'workflow_error'."""
    message: str


@dataclass(frozen=True, slots=True)
class WorkflowUnparked:
    """Newly deployed code got a parked workflow moving again."""


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """A command that made no sense. Recorded with seq 0: it is not part of any history."""

    command_id: str
    command_type: str
    reason: str
    """A stable code: 'unknown_workflow_type', 'duplicate_workflow_id', 'workflow_not_found',
    'workflow_closed', 'payload_too_large', 'unknown_version', 'workflow_quarantined', ..."""
    message: str


EventBody: TypeAlias = (
    WorkflowStarted
    | ActivityScheduled
    | ActivityAttemptFailed
    | ActivityRetried
    | ActivityCompleted
    | ActivityFailed
    | ActivityHeartbeatRecorded
    | ActivityCancelRequested
    | TimerStarted
    | TimerFired
    | TimerCancelled
    | SignalReceived
    | SignalWaitStarted
    | CancelRequested
    | MarkerRecorded
    | StateTransitioned
    | UpdateAccepted
    | UpdateCompleted
    | WorkflowCompleted
    | WorkflowFailed
    | WorkflowCancelled
    | WorkflowTerminated
    | WorkflowTimedOut
    | WorkflowContinuedAsNew
    | WorkflowParked
    | WorkflowUnparked
    | CommandRejected
    | ChildWorkflowStarted
    | ChildWorkflowCompleted
    | ChildWorkflowFailed
)

CLOSING_EVENTS = (
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    WorkflowTerminated,
    WorkflowTimedOut,
    WorkflowContinuedAsNew,
)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a workflow's history. Identity is (workflow_id, seq)."""

    workflow_id: str
    seq: int
    """1, 2, 3, ... per workflow id, continuing across continue-as-new runs; 0 for rejections."""
    run_id: str
    recorded_at_ms: int
    body: EventBody


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class ClosedWorkflow:
    """What the engine keeps of a workflow id once it has closed, for ever: enough to answer a
    repeated start (the same start command is a no-op, another one a duplicate id) and to
    recognise late commands as addressed to a closed workflow.

    An effect: the orchestrator writes it, keyed by workflow id, to the compacted
    closed-workflows topic in the same transaction as the closing event, and a rebuild loads it
    back, so the engine knows every workflow id a partition has ever seen, not only the open
    ones above the checkpoint's low-water mark. Slotted because a partition holds many.
    """

    workflow_id: str
    run_id: str
    """The last run's id."""
    status: str
    """'completed', 'failed', 'cancelled', 'terminated' or 'timed_out'."""
    start_command_id: str
    """command_id of the StartWorkflow that created the workflow ("" if it is not known)."""
    last_seq: int
    closed_at_ms: int


@dataclass(frozen=True, slots=True)
class ActivityTask:
    """Run one attempt of an activity. Produced to tasks.<task_queue>, keyed by workflow_id."""

    workflow_id: str
    run_id: str
    workflow_type: str
    activity_seq: int
    attempt: int
    activity_name: str
    task_queue: str
    input: bytes
    idempotency_key: str
    """'{workflow_id}/{activity_seq}': the logical step, never the attempt."""
    scheduled_at_ms: int
    start_to_close_ms: int
    heartbeat_timeout_ms: int = 0
    """The worker heartbeats at least every third of this (0 = no heartbeat deadline)."""
    heartbeat_details: bytes = b"null"
    """The last details a previous attempt heartbeated (JSON null if none)."""


@dataclass(frozen=True, slots=True)
class ActivityCancellation:
    """Tell the worker running one step that the workflow cancelled it. An effect, produced in
    the same transaction as ActivityCancelRequested to the compacted activity-cancels topic,
    keyed by the step's idempotency key; `active=False` is the tombstone written once the
    activity has closed, so the topic holds only cancellations still in flight."""

    idempotency_key: str
    workflow_id: str
    run_id: str
    activity_seq: int
    active: bool = True


def idempotency_key(workflow_id: str, activity_seq: int) -> str:
    """The key of a logical step, never of an attempt: the worker's idempotency row and what the
    activity passes to the outside world (a payment provider's idempotency key)."""
    return f"{workflow_id}/{activity_seq}"


@dataclass(frozen=True, slots=True)
class CommandToWorkflow:
    """A command for another workflow. Produced to the commands topic keyed by the target's
    workflow id (so it lands on the partition that owns the target, wherever that is)."""

    command: WorkflowCommand


@dataclass(frozen=True, slots=True)
class ReplyToCaller:
    """The answer to a caller that waits on its command (a query, an update). Produced to the
    replies topic keyed by `reply_to`, which the caller chose and is consuming."""

    reply_to: str
    command_id: str
    """The command answered; the caller matches replies by it."""
    ok: bool
    result: bytes = b"null"
    """JSON; meaningful when ok."""
    error_type: str = ""
    message: str = ""
    """Why not, when not ok."""


Effect: TypeAlias = ActivityTask | CommandToWorkflow | ReplyToCaller | ActivityCancellation
"""Everything a decision asks of the world besides its events."""


@dataclass(frozen=True, slots=True)
class StepView:
    """An open activity as it was scheduled: (workflow_id, activity_seq) is its identity, the
    seq of its ActivityScheduled event."""

    workflow_id: str
    activity_seq: int
    name: str
    compensation: bool
    scheduled_at_ms: int


@dataclass(frozen=True, slots=True)
class Decision:
    """What one input to the core decided: events to append and effects to produce."""

    events: tuple[Event, ...] = ()
    effects: tuple[Effect, ...] = ()
    closed: tuple[ClosedWorkflow, ...] = ()
    """Workflows this input closed, to be remembered durably with the closing events."""
    steps: tuple[StepView, ...] = ()
    """The activities its outcome events (attempt failed, retried, completed, failed) are
    about, as they were scheduled: those events carry only the activity's seq, and an observer
    names what it records from these instead of keeping its own copy of every open step."""

    @property
    def tasks(self) -> tuple[ActivityTask, ...]:
        """The activity tasks among the effects, in order."""
        return tuple(e for e in self.effects if isinstance(e, ActivityTask))

    @property
    def cancellations(self) -> tuple[ActivityCancellation, ...]:
        """The notices to workers among the effects (running activities cancelled, or the
        tombstones of settled ones), in order."""
        return tuple(e for e in self.effects if isinstance(e, ActivityCancellation))

    @property
    def rejection(self) -> CommandRejected | None:
        for e in self.events:
            if isinstance(e.body, CommandRejected):
                return e.body
        return None

    def __add__(self, other: Decision) -> Decision:
        return Decision(
            self.events + other.events,
            self.effects + other.effects,
            self.closed + other.closed,
            self.steps + other.steps,
        )
