"""Observation points of the orchestrator loop, for metrics and tracing.

The loop calls these at its effect boundaries; the defaults do nothing, so the loop itself
knows nothing of Prometheus or OpenTelemetry. Rebuild never calls the per-decision hooks:
replay creates no spans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from sagaflow.core.messages import Command, Decision, Event

RecordHeaders: TypeAlias = (
    Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]]
)
"""A consumed record's headers, as confluent-kafka's `Message.headers()` gives them."""

Headers: TypeAlias = list[tuple[str, bytes]]
"""Headers to write with one produced record."""


@dataclass(frozen=True)
class ConsumedCommand:
    """A command as it was read: the decoded command and where it came from."""

    command: Command
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Fired:
    """Time, not a command, made the decision: due timers, retry backoffs and activity timeouts
    fired (`due`), or parked workflows resumed once their code was deployed (`resumed`)."""

    kind: Literal["due", "resumed"]
    at_ms: int


@dataclass(frozen=True)
class Decided:
    """One decision of a batch: what the core decided, why, and where it will be written."""

    partition: int
    """The events partition its events go to (the partition of the workflow's commands)."""
    decision: Decision
    cause: ConsumedCommand | Fired
    """Why: the command decided, or what fired."""
    seconds: float
    """How long the core took to decide it."""


@dataclass(frozen=True)
class DecisionHeaders:
    """Headers for a decision's records, one list per event and per effect, in order."""

    events: tuple[Headers, ...]
    effects: tuple[Headers, ...]


class Hooks:
    def rebuilt(self, partition: int, events: int, seconds: float) -> None:
        """A partition's state was rebuilt from the events log."""

    def restored(self, event: Event, headers: RecordHeaders) -> None:
        """Rebuild folded one event of an open workflow (with its record's headers).

        Observers recover what they remember per workflow (its trace context) here; this is
        replay, so it must create no spans.
        """

    def aborted(self) -> None:
        """The batch's transaction was aborted; the partitions it touched are rebuilt next."""

    def batch(self, decided: Sequence[Decided]) -> Sequence[DecisionHeaders] | None:
        """The batch's decisions are about to be produced, in one transaction: headers for each
        decision's records (aligned with `decided`), or None for no headers at all."""
        return None

    def committed(self, commands: int, events: int, tasks: int, dead: int, seconds: float) -> None:
        """A batch's transaction committed."""

    def dead_lettered(self, stage: str) -> None:
        """A record went to the dlq."""
