"""The one error hierarchy of sagaflow's core and user API.

    SagaflowError
    ├── FailureError             fails the workflow on purpose (after its compensations)
    │   ├── ApplicationError     raised by workflow or activity code
    │   │   └── CompensationError  a saga's compensations did not all succeed
    │   ├── ActivityError        an activity failed for good; raised at the workflow's await
    │   │   └── ActivityCancelledError  the workflow cancelled it
    │   └── SignalTimeoutError   wait_for_signal(timeout=...) ran out
    ├── NonDeterminismError      replay found the code taking another path than history
    ├── WorkflowCodeError        workflow code raised something else: a bug; the workflow parks
    ├── RegistryError            unknown workflow type/version or activity, or a bad registration
    └── DecodeError              bytes that are not a sagaflow message (sagaflow.codec)

    CancelledError (a BaseException, like asyncio's, so `except Exception` does not swallow it)

Every message says what happened and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagaflow.core import payload


class SagaflowError(Exception):
    """Base of every error sagaflow raises on purpose."""


class FatalError(SagaflowError):
    """The process cannot go on safely (Kafka fenced it, its own log cannot be read): it exits
    with code 3 and the platform restarts it with fresh clients. A dependency going away is
    never this: services wait for it, unready, instead."""


class FailureError(SagaflowError):
    """An error that fails the workflow on purpose (compensations run first when a saga is used).

    `error_type` and `details` are recorded in WorkflowFailed.
    """

    @property
    def error_type(self) -> str:
        return type(self).__name__

    @property
    def details(self) -> Any:
        return None


class ApplicationError(FailureError):
    """A business failure raised on purpose, by an activity or by workflow code.

    In an activity, `non_retryable=True` stops retries at once (FailActivity retryable=False);
    otherwise the activity's retry policy decides. In a workflow, it fails the workflow.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        non_retryable: bool = False,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type or "ApplicationError"
        self.non_retryable = non_retryable
        self._details = details

    @property
    def error_type(self) -> str:
        return self.type

    @property
    def details(self) -> Any:
        return self._details


class CompensationError(ApplicationError):
    """Some compensations of a saga failed for good; `details` lists them."""


class ActivityError(FailureError):
    """An activity failed for good (no attempts left, non-retryable, or timed out).

    Raised at the workflow's await. Uncaught, it fails the workflow.
    """

    def __init__(
        self,
        *,
        activity_name: str,
        activity_seq: int,
        cause_type: str,
        message: str,
        reason: str,
        attempt: int,
        details: Any = None,
    ) -> None:
        super().__init__(
            f"activity {activity_name!r} (seq {activity_seq}) failed after attempt {attempt} "
            f"({reason}): {cause_type}: {message}"
        )
        self.activity_name = activity_name
        self.activity_seq = activity_seq
        self.cause_type = cause_type
        self.cause_message = message
        self.reason = reason
        self.attempt = attempt
        self._details = details

    @property
    def details(self) -> Any:
        return {
            "activity_name": self.activity_name,
            "activity_seq": self.activity_seq,
            "cause_type": self.cause_type,
            "reason": self.reason,
            "attempt": self.attempt,
            "details": self._details,
        }


class ActivityCancelledError(ActivityError):
    """The workflow cancelled the activity (ActivityHandle.cancel) and it stopped, or the
    workflow chose not to wait for it to stop."""


class SignalTimeoutError(FailureError):
    """`wait_for_signal(name, timeout=...)` ran out before the signal arrived."""

    def __init__(self, signal_name: str, timeout_ms: int) -> None:
        super().__init__(f"no signal {signal_name!r} arrived within {timeout_ms} ms")
        self.signal_name = signal_name
        self.timeout_ms = timeout_ms


class CancelledError(BaseException):
    """The workflow was cancelled from outside; raised at the await the workflow is blocked on.

    Catch it to clean up (run compensations); awaits work normally afterwards. Re-raise it (or let
    it escape) to end the workflow as cancelled. Delivered once per cancellation request.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "workflow cancelled")
        self.reason = reason


class NonDeterminismError(SagaflowError):
    """Replaying history against the workflow code found the code taking another path."""

    def __init__(self, *, workflow_id: str, seq: int, code_did: str, history_recorded: str) -> None:
        super().__init__(
            f"workflow {workflow_id!r} is not deterministic at seq {seq}: the code {code_did}, "
            f"but history recorded {history_recorded}. The workflow is parked; deploy code that "
            "takes the recorded path (guard changes with ctx.patched('change-id'))."
        )
        self.workflow_id = workflow_id
        self.seq = seq
        self.code_did = code_did
        self.history_recorded = history_recorded


class WorkflowCodeError(SagaflowError):
    """Workflow code raised an exception that is not a FailureError: a bug. The workflow parks
    and is retried when new code is deployed (Engine.resume_parked)."""

    def __init__(self, workflow_id: str, cause: BaseException) -> None:
        super().__init__(
            f"workflow {workflow_id!r} raised {type(cause).__name__}: {cause}. It is parked; fix "
            "the code (raise ApplicationError to fail a workflow on purpose) and redeploy."
        )
        self.workflow_id = workflow_id
        self.cause = cause


class RegistryError(SagaflowError):
    """A workflow type, version or activity is unknown, or was registered twice."""


class DecodeError(SagaflowError, ValueError):
    """Bytes that are not a sagaflow message of the expected kind (see sagaflow.codec)."""


class ContinueAsNew(BaseException):
    """Raised by ctx.continue_as_new(); a BaseException so `except Exception` cannot swallow it."""

    def __init__(self, input: Any) -> None:
        super().__init__("continue as new")
        self.input = input


@dataclass(frozen=True)
class ActivityFailure:
    """How an activity's failed attempt is reported (the fields of FailActivity)."""

    error_type: str
    message: str
    retryable: bool
    details: bytes = b"null"


class ActivityCancelled(SagaflowError):
    """Raised inside an activity (ActivityContext.raise_if_cancelled) that obeys its
    workflow's cancellation; the worker reports the attempt as cancelled, never retried."""

    def __init__(self, idempotency_key: str) -> None:
        super().__init__(
            f"step {idempotency_key} was cancelled by its workflow; the activity stopped"
        )


def activity_failure(exc: BaseException) -> ActivityFailure:
    """The one classification of what an activity raised, for the worker and the test kit: an
    ApplicationError says itself whether it may be retried; anything else is a bug or an
    outage in the attempt, retried under the activity's policy."""
    if isinstance(exc, ActivityCancelled):
        return ActivityFailure("ActivityCancelled", str(exc), False)
    if isinstance(exc, ApplicationError):
        return ActivityFailure(
            exc.type, exc.message, not exc.non_retryable, payload.dumps(exc.details)
        )
    return ActivityFailure(type(exc).__name__, str(exc) or repr(exc), True)
