"""Observation points of the worker, for metrics and tracing; the defaults do nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Message

from sagaflow.core.messages import ActivityTask


class WorkerHooks:
    @contextlib.contextmanager
    def task_span(self, task: ActivityTask, msg: Message) -> Iterator[Any]:
        """Wraps the handling of one task (claim, run, publish)."""
        yield None

    def claimed(self, task: ActivityTask, outcome: str) -> None:
        """The idempotency claim answered `outcome` (Acquired, AlreadyCompleted, ...)."""

    def executed(self, task: ActivityTask, outcome: Any, seconds: float, span: Any) -> None:
        """The activity ran (outcome: Succeeded or Failed)."""

    def command_headers(self, span: Any) -> list[tuple[str, bytes]]:
        """Headers for the CompleteActivity/FailActivity command (trace context)."""
        return []

    def dead_lettered(self, stage: str) -> None:
        """A record went to the dlq."""
