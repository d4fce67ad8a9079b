"""What the engine produces for an open activity besides events: the task of an attempt, the
cancellation notices for the worker running it, and which reports concern it.

Pure functions over folded state; the engine records events, these shape its effects.
"""

from __future__ import annotations

from sagaflow.core.messages import (
    CLOSING_EVENTS,
    ActivityCancellation,
    ActivityCompleted,
    ActivityFailed,
    ActivityTask,
    EventBody,
    idempotency_key,
)
from sagaflow.core.state import ActivityState, WorkflowState


def task_for(state: WorkflowState, activity: ActivityState, now_ms: int) -> ActivityTask:
    """The task of the activity's current attempt, carrying what earlier attempts heartbeated."""
    return ActivityTask(
        workflow_id=state.workflow_id,
        run_id=state.run_id,
        workflow_type=state.workflow_type,
        activity_seq=activity.seq,
        attempt=activity.attempt,
        activity_name=activity.name,
        task_queue=activity.task_queue,
        input=activity.input,
        idempotency_key=idempotency_key(state.workflow_id, activity.seq),
        scheduled_at_ms=now_ms,
        start_to_close_ms=activity.start_to_close_ms,
        heartbeat_timeout_ms=activity.heartbeat_timeout_ms,
        heartbeat_details=activity.heartbeat_details,
    )


def reported_activity(state: WorkflowState, run_id: str, seq: int) -> ActivityState | None:
    """The open activity a worker's report is about; None if it is another run's or closed."""
    if run_id != state.run_id:
        return None
    return state.activities.get(seq)


def cancellations_settled_by(state: WorkflowState, body: EventBody) -> list[int]:
    """Activities with a cancellation notice out that `body` closes (their tombstones are due),
    looked up before `body` is applied. A notice went out only if an attempt was running when
    the cancellation was recorded (one cancelled between attempts fails at once)."""
    if isinstance(body, ActivityCompleted | ActivityFailed):
        candidates = [state.activities.get(body.activity_seq)]
    elif isinstance(body, CLOSING_EVENTS):
        candidates = list(state.activities.values())
    else:
        return []
    return [
        a.seq for a in candidates if a is not None and a.cancel_requested and a.retry_at_ms is None
    ]


def cancellation(state: WorkflowState, seq: int, *, active: bool) -> ActivityCancellation:
    """The notice for the worker running step `seq` (active) or its tombstone (not active)."""
    key = idempotency_key(state.workflow_id, seq)
    return ActivityCancellation(key, state.workflow_id, state.run_id, seq, active)
