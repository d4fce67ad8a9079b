"""Observation points of the worker, for metrics and tracing; the defaults do nothing.

The runner hands every hook the frozen record of the task it consumed and the `TaskTrace` that
`begin` returned for it, so an observer never has to look a task up by identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.trace import Span

from sagaflow.core.messages import ActivityTask
from sagaflow_worker.idempotency import Outcome


@dataclass(frozen=True)
class ConsumedTask:
    """An activity task as it was read: the decoded task and where it came from."""

    task: ActivityTask
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    group: str


@dataclass
class TaskTrace:
    """What an observer keeps for one task from `begin` to `end`; the runner carries it."""

    consumed: ConsumedTask
    span: Span | None = None
    children: list[Span] = field(default_factory=list)


class WorkerHooks:
    def begin(self, consumed: ConsumedTask) -> TaskTrace:
        """A task enters the pipeline (claim, run, record, publish)."""
        return TaskTrace(consumed)

    def claimed(self, trace: TaskTrace, outcome: str) -> None:
        """The idempotency claim answered `outcome` (Acquired, AlreadyCompleted, ...)."""

    def executed(self, trace: TaskTrace, outcome: Outcome, seconds: float) -> None:
        """The activity ran."""

    def result_headers(self, trace: TaskTrace) -> list[tuple[str, bytes]]:
        """Headers for the CompleteActivity/FailActivity command (trace context)."""
        return []

    def end(self, trace: TaskTrace, error: str | None) -> None:
        """The task left the pipeline: its result is acknowledged by Kafka, or (error) it was
        dropped and will be retried by the orchestrator or redelivered."""

    def dead_lettered(self, stage: str) -> None:
        """A record went to the dlq."""
