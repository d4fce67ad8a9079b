"""The one set of workflow statuses: the engine's state, the read model, the API, the CLI and
the UI all speak these strings."""

from __future__ import annotations

from enum import StrEnum


class WorkflowStatus(StrEnum):
    RUNNING = "running"
    PARKED = "parked"
    """Workflow code raised a bug (not an ApplicationError) or replay diverged: waiting for
    fixed code, nothing lost."""
    QUARANTINED = "quarantined"
    """The engine's own log is inconsistent for this workflow (a seq gap, an undecodable
    event): kept apart, never skipped. Only the engine knows this status."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"
    """Stopped by TerminateWorkflow: no code ran after it, nothing was compensated."""
    TIMED_OUT = "timed_out"
    """Its execution or run timeout passed: closed like a terminate, by the clock."""
    CONTINUED_AS_NEW = "continued_as_new"


CLOSED_STATUSES = frozenset(
    {
        WorkflowStatus.COMPLETED,
        WorkflowStatus.FAILED,
        WorkflowStatus.CANCELLED,
        WorkflowStatus.TERMINATED,
        WorkflowStatus.TIMED_OUT,
    }
)
"""Statuses a workflow (id) never leaves."""

LISTED_STATUSES: tuple[str, ...] = tuple(
    s.value for s in WorkflowStatus if s is not WorkflowStatus.QUARANTINED
)
"""What the read model records and lists filter on."""
