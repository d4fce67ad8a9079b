"""What a workflow's outcome raises in the client, on the engine's own error hierarchy.

SagaflowError
├── WorkflowFailureError         the workflow failed; `__cause__` is what failed it
│                                (ApplicationError, ActivityError -> its cause, ...)
├── WorkflowCancelledError       the workflow was cancelled
├── WorkflowStartRejectedError   the engine refused the start (invalid input, duplicate id...)
├── WorkflowNotFoundError        the read model has no such workflow (yet)
└── WorkflowResultTimeoutError   (also a TimeoutError) no outcome within the timeout
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sagaflow.core import payload
from sagaflow.core.errors import (
    ActivityError,
    ApplicationError,
    CompensationError,
    FailureError,
    SagaflowError,
)
from sagaflow.core.messages import (
    CommandRejected,
    WorkflowFailed,
    WorkflowTerminated,
    WorkflowTimedOut,
)


class WorkflowFailureError(SagaflowError):
    """The workflow failed. `error_type`, `message` and `details` are what WorkflowFailed
    recorded; `cause` (also `__cause__`) is the engine's exception that failed it, rebuilt."""

    def __init__(self, workflow_id: str, failed: WorkflowFailed) -> None:
        super().__init__(f"workflow {workflow_id!r} failed: {failed.error_type}: {failed.message}")
        self.workflow_id = workflow_id
        self.error_type = failed.error_type
        self.message = failed.message
        self.details: Any = _details(failed.details)
        self.cause: FailureError = failure_cause(failed.error_type, failed.message, self.details)
        self.__cause__ = self.cause


class WorkflowCancelledError(SagaflowError):
    """The workflow ended cancelled (it was asked to, and let the cancellation end it)."""

    def __init__(self, workflow_id: str, reason: str) -> None:
        super().__init__(f"workflow {workflow_id!r} was cancelled: {reason or 'no reason given'}")
        self.workflow_id = workflow_id
        self.reason = reason


class WorkflowTerminatedError(SagaflowError):
    """The workflow was terminated: stopped at once, no compensation ran. `by` and `reason` are
    what the terminate recorded."""

    def __init__(self, workflow_id: str, event: WorkflowTerminated) -> None:
        super().__init__(
            f"workflow {workflow_id!r} was terminated by {event.by or 'an unnamed caller'}: "
            f"{event.reason or 'no reason given'}"
        )
        self.workflow_id = workflow_id
        self.reason = event.reason
        self.by = event.by


class WorkflowTimedOutError(SagaflowError):
    """The workflow's execution or run timeout (`timeout`) passed: it closed at once and ran
    no more code. Not a TimeoutError: that is result() giving up waiting."""

    def __init__(self, workflow_id: str, event: WorkflowTimedOut) -> None:
        super().__init__(
            f"workflow {workflow_id!r} timed out (its {event.timeout} timeout passed); start "
            "it with a longer timeout if it needs more time"
        )
        self.workflow_id = workflow_id
        self.timeout = event.timeout
        self.deadline_ms = event.deadline_ms


class WorkflowClosedError(SagaflowError):
    """The workflow closed without a result in another way than failing or being cancelled
    (terminated, timed out...); `event` is what closed it."""

    def __init__(self, workflow_id: str, event: Any) -> None:
        fields = ", ".join(f"{k}={v!r}" for k, v in _fields(event).items())
        super().__init__(
            f"workflow {workflow_id!r} closed without a result: {type(event).__name__}({fields})"
        )
        self.workflow_id = workflow_id
        self.event = event


def _fields(event: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(event):
        return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return {}


class WorkflowStartRejectedError(SagaflowError):
    """The engine refused to start the workflow. `reason` is the stable code
    ('invalid_input', 'duplicate_workflow_id', 'unknown_workflow_type', ...); for
    'invalid_input', `field` is the path of the offending value."""

    def __init__(self, workflow_id: str, rejected: CommandRejected) -> None:
        super().__init__(
            f"the start of workflow {workflow_id!r} was refused ({rejected.reason}): "
            f"{rejected.message}"
        )
        self.workflow_id = workflow_id
        self.reason = rejected.reason
        self.message = rejected.message
        self.field = rejected.message.split(":", 1)[0] if rejected.reason == "invalid_input" else ""


class WorkflowNotFoundError(SagaflowError, LookupError):
    """The read model does not know the workflow."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            f"no workflow {workflow_id!r} in the read model; check the id, or if it was just "
            "started, ask again in a moment (the projector may not have caught up)"
        )
        self.workflow_id = workflow_id


class WorkflowResultTimeoutError(SagaflowError, TimeoutError):
    """The workflow did not close within the timeout; it may still be running."""

    def __init__(self, workflow_id: str, timeout_s: float) -> None:
        super().__init__(
            f"workflow {workflow_id!r} did not close within {timeout_s:g}s; it may still be "
            "running (or parked: see describe()). Call result() again with a longer timeout, "
            "or cancel it"
        )
        self.workflow_id = workflow_id
        self.timeout_s = timeout_s


def _details(data: bytes) -> Any:
    try:
        return payload.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")


def failure_cause(error_type: str, message: str, details: Any) -> FailureError:
    """The engine's exception for a recorded failure, its own cause chained below it (an
    activity's failure carries the error the activity raised)."""
    if error_type == "ActivityError" and isinstance(details, dict):
        error = ActivityError(
            activity_name=str(details.get("activity_name", "")),
            activity_seq=int(details.get("activity_seq", 0)),
            cause_type=str(details.get("cause_type", "")),
            message=_activity_message(message),
            reason=str(details.get("reason", "")),
            attempt=int(details.get("attempt", 0)),
            details=details.get("details"),
        )
        error.__cause__ = ApplicationError(
            error.cause_message, type=error.cause_type, details=details.get("details")
        )
        return error
    if error_type == "CompensationError":
        return CompensationError(message, type=error_type, details=details)
    return ApplicationError(message, type=error_type, details=details)


def _activity_message(message: str) -> str:
    """The activity's own message out of ActivityError's ('... failed ...: Type: message')."""
    _head, sep, rest = message.partition("): ")
    if not sep:
        return message
    _type, sep, own = rest.partition(": ")
    return own if sep else rest
