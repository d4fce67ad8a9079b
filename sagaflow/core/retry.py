"""What happens to an activity when an attempt fails or one of its deadlines passes.

Pure decisions over an open activity's folded state; the engine records the returned event.
"""

from __future__ import annotations

from sagaflow.core.messages import ActivityAttemptFailed, ActivityFailed, ActivityRetried
from sagaflow.core.state import ActivityState

HEARTBEAT_TIMEOUT = "HeartbeatTimeout"
"""error_type of an attempt that stopped heartbeating."""
ACTIVITY_CANCELLED = "ActivityCancelled"
"""error_type of an activity the workflow cancelled (and of the attempt that obeyed)."""


def cancelled_between_attempts(activity: ActivityState) -> ActivityFailed:
    """The workflow cancelled an activity while it waited for its next attempt: no attempt runs,
    so nothing needs to confirm the cancellation."""
    return ActivityFailed(
        activity.seq,
        activity.attempt,
        ACTIVITY_CANCELLED,
        f"activity {activity.name!r} was cancelled by the workflow between attempts",
        b"null",
        "cancelled",
    )


def after_failed_attempt(
    activity: ActivityState,
    error_type: str,
    message: str,
    details: bytes,
    *,
    retryable: bool,
    timed_out: bool,
    now_ms: int,
) -> ActivityFailed | ActivityAttemptFailed:
    """Retry after the policy's backoff if attempts and time are left; otherwise fail for good.
    An attempt of an activity the workflow cancelled is never followed by another."""
    policy = activity.retry_policy
    reason = ""
    retry_at_ms = 0
    if activity.cancel_requested:
        reason = "cancelled"
    elif not retryable or error_type in policy.non_retryable_error_types:
        reason = "non_retryable"
    elif policy.maximum_attempts and activity.attempt >= policy.maximum_attempts:
        reason = "attempts_exhausted"
    else:
        delay = policy.initial_interval_ms * policy.backoff_coefficient ** (activity.attempt - 1)
        retry_at_ms = now_ms + int(min(delay, policy.maximum_interval_ms))
        deadline = activity.scheduled_at_ms + activity.schedule_to_close_ms
        if activity.schedule_to_close_ms > 0 and retry_at_ms >= deadline:
            reason = "schedule_to_close_timeout"
    if reason:
        return ActivityFailed(activity.seq, activity.attempt, error_type, message, details, reason)
    return ActivityAttemptFailed(
        activity.seq, activity.attempt, error_type, message, timed_out, retry_at_ms
    )


def when_due(
    activity: ActivityState, now_ms: int
) -> ActivityFailed | ActivityAttemptFailed | ActivityRetried:
    """The activity's next due time has come: give up (schedule-to-close), dispatch the next
    attempt (backoff over), or time the current attempt out (start-to-close)."""
    deadline = activity.scheduled_at_ms + activity.schedule_to_close_ms
    if activity.schedule_to_close_ms > 0 and deadline <= now_ms:
        return ActivityFailed(
            activity.seq,
            activity.attempt,
            "ScheduleToCloseTimeout",
            f"activity {activity.name!r} did not finish within "
            f"{activity.schedule_to_close_ms} ms over all attempts",
            b"null",
            "schedule_to_close_timeout",
        )
    if activity.retry_at_ms is not None:
        if activity.cancel_requested:
            return cancelled_between_attempts(activity)
        return ActivityRetried(activity.seq, activity.attempt + 1)
    heartbeat_deadline = activity.heartbeat_deadline_ms()
    start_to_close_deadline = activity.attempt_started_at_ms + activity.start_to_close_ms
    if (
        heartbeat_deadline is not None
        and heartbeat_deadline <= now_ms
        and (activity.start_to_close_ms <= 0 or heartbeat_deadline < start_to_close_deadline)
    ):
        return after_failed_attempt(
            activity,
            HEARTBEAT_TIMEOUT,
            f"attempt {activity.attempt} sent no heartbeat for "
            f"{activity.heartbeat_timeout_ms} ms (the activity's heartbeat timeout); it is "
            "presumed stuck or its worker gone",
            b"null",
            retryable=True,
            timed_out=True,
            now_ms=now_ms,
        )
    return after_failed_attempt(
        activity,
        "StartToCloseTimeout",
        f"attempt {activity.attempt} did not finish within {activity.start_to_close_ms} ms",
        b"null",
        retryable=True,
        timed_out=True,
        now_ms=now_ms,
    )
