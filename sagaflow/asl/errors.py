"""The ASL error names and the one exception the interpreter raises for them.

A `StatesError` is an ApplicationError, so an uncaught one fails the workflow through the
engine's ordinary path, recording `error_type` = the ASL error name and `details` =
{"Error", "Cause"} (what `sagaflow asl run` prints).
"""

from __future__ import annotations

from typing import Any

from sagaflow.workflow import ApplicationError

ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
RUNTIME = "States.Runtime"
BRANCH_FAILED = "States.BranchFailed"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
TOLERATED_FAILURE_EXCEEDED = "States.ExceedToleratedFailureThreshold"
EXECUTION_TIMED_OUT = "States.Timeout"

# Terminal errors: AWS documents that they always fail the execution; no Retry or Catch
# matches them, not even by name.
TERMINAL = frozenset({RUNTIME, "States.DataLimitExceeded"})


class StatesError(ApplicationError):
    """An ASL error: `error` is the name Retry/Catch match on, `cause` the human story."""

    def __init__(self, error: str, cause: str, *, execution_timed_out: bool = False) -> None:
        details: dict[str, Any] = {"Error": error, "Cause": cause}
        if execution_timed_out:
            details["ExecutionTimedOut"] = True
        super().__init__(cause, type=error, non_retryable=True, details=details)
        self.error = error
        self.cause = cause
        self.execution_timed_out = execution_timed_out


def runtime(cause: str) -> StatesError:
    return StatesError(RUNTIME, cause)


def matches(error: str, names: list[str]) -> bool:
    """Does an ErrorEquals list match `error`? (States.ALL matches every error but the terminal
    ones; States.TaskFailed every one but those and the timeouts; States.Timeout also matches
    States.HeartbeatTimeout, as AWS documents: a Task that stopped heartbeating timed out.)"""
    if error in TERMINAL:
        return False
    for name in names:
        if name == error:
            return True
        if name == ALL and error not in TERMINAL:
            return True
        if name == TIMEOUT and error == HEARTBEAT_TIMEOUT:
            return True
        if name == TASK_FAILED and error not in (TIMEOUT, HEARTBEAT_TIMEOUT):
            return True
    return False
