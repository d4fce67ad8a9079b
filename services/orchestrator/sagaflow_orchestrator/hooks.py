"""Observation points of the orchestrator loop, for metrics and tracing.

The loop calls these at its effect boundaries; the defaults do nothing, so the loop itself
knows nothing of Prometheus or OpenTelemetry. Rebuild never calls the per-decision hooks:
replay creates no spans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

from confluent_kafka import Message

from sagaflow.core.messages import ActivityTask, Command, Decision, Event

RecordHeaders: TypeAlias = (
    Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]]
)
"""A consumed record's headers, as confluent-kafka's `Message.headers()` gives them."""


class Hooks:
    def rebuilt(self, partition: int, events: int, seconds: float) -> None:
        """A partition's state was rebuilt from the events log."""

    def restored(self, event: Event, headers: RecordHeaders) -> None:
        """Rebuild folded one event of an open workflow (with its record's headers).

        Observers recover what they remember per workflow (its trace context) here; this is
        replay, so it must create no spans.
        """

    def aborted(self) -> None:
        """The batch's transaction was aborted; the owned partitions are rebuilt next."""

    def decided(self, command: Command, decision: Decision, seconds: float) -> None:
        """The core decided one command."""

    def emitted(self, decision: Decision, source: Message | None) -> None:
        """A decision's events and tasks are about to be produced (source: the command)."""

    def event_headers(self, event: Event) -> list[tuple[str, bytes]]:
        """Headers for an event record (trace context)."""
        return []

    def task_headers(self, task: ActivityTask) -> list[tuple[str, bytes]]:
        """Headers for an activity task record (trace context)."""
        return []

    def committed(self, commands: int, events: int, tasks: int, dead: int, seconds: float) -> None:
        """A batch's transaction committed."""

    def dead_lettered(self, stage: str) -> None:
        """A record went to the dlq."""
