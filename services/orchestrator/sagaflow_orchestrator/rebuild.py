"""Rebuilding a partition's workflows: every closed one from the closed-workflows index, the
open ones from its events log.

First the closed-workflows partition p (compacted, one record per closed workflow id, written
in the same transaction as the closing event) is read whole, so the engine knows every workflow
id the partition has ever closed, however long ago. Then the events partition is read with
read_committed from the checkpointed low-water offset (the lowest offset any open workflow still
needs) to its end. Events of an aborted transaction are never seen. Events of a workflow whose
run began before the low-water mark belong to a workflow that was already closed when the
checkpoint was taken; only the fact that it closed is kept.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Message

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core.engine import Engine
from sagaflow.core.errors import FatalError
from sagaflow.core.messages import CLOSING_EVENTS, Event, WorkflowContinuedAsNew, WorkflowStarted
from sagaflow.core.registry import Registry
from sagaflow.kafka.clients import reader
from sagaflow.kafka.logread import LogReadError, ends_when_reachable, read_partitions
from sagaflow.kafka.records import headers_of, position
from sagaflow_orchestrator.hooks import Hooks, RecordHeaders

log = logging.getLogger(__name__)


class RebuildError(FatalError):
    """The events log could not be read to its end in time; the process should restart."""


RANGE_FETCH_WAIT_MS = 10
"""How long the broker may hold a fetch that finds nothing new, for the orchestrator's range
reads. A range read learns it has reached a partition's end only from an empty fetch (the last
records are transaction markers, never handed out), and librdkafka's default lets the broker
hold that fetch 500 ms: most of a survivor's failover went to these waits (2.7 s against 0.2 s
for three partitions rebuilt on this machine). A range read is short-lived, so the extra empty
fetches cost nothing."""


def range_reader(config: Config) -> Consumer:
    """A reader for the orchestrator's range reads (rebuild, checkpoints) that reaches each
    partition's end without waiting on the broker's idle fetch."""
    return reader(config, **{"fetch.wait.max.ms": RANGE_FETCH_WAIT_MS})


@dataclass
class OwnedPartition:
    """One commands partition this orchestrator owns, with the state rebuilt for it."""

    partition: int
    engine: Engine
    start_offsets: dict[str, int] = field(default_factory=dict)
    """workflow_id -> offset in events-p of its current run's WorkflowStarted (open runs only)."""
    end_offset: int = 0
    """The events-p offset after the last event this process knows of."""
    rebuilt_events: int = 0
    remembered_closed: int = 0
    """Closed workflows loaded from the closed-workflows index."""
    rebuild_seconds: float = 0.0

    def low_water(self) -> int:
        """Lowest events offset a rebuild must start from to restore every open workflow."""
        open_ids = self.engine.open_workflow_ids()
        offsets = [o for w, o in self.start_offsets.items() if w in open_ids]
        return min(offsets) if offsets else self.end_offset

    def note_appended(self, event: Event, offset: int) -> None:
        self.end_offset = max(self.end_offset, offset + 1)
        if isinstance(event.body, WorkflowStarted):
            self.start_offsets[event.workflow_id] = offset
        elif isinstance(event.body, CLOSING_EVENTS) and not isinstance(
            event.body, WorkflowContinuedAsNew
        ):
            self.start_offsets.pop(event.workflow_id, None)


def rebuild_partition(
    config: Config,
    registry: Registry,
    partition: int,
    low_water: int,
    *,
    timeout_s: float | None = None,
    hooks: Hooks | None = None,
    consumer: Consumer | None = None,
) -> OwnedPartition:
    """Fold events-`partition` from `low_water` (its checkpoint) to its end into a fresh engine.

    `consumer`: a reader to use (and leave open), so that rebuilding several partitions pays for
    one client's connection and metadata instead of one per partition."""
    hooks = hooks or Hooks()
    started = time.monotonic()
    owned = OwnedPartition(partition, Engine(registry, max_payload_bytes=config.max_payload_bytes))
    # An open transaction of a dead orchestrator holds read_committed back until the broker
    # aborts it, which takes at most the transaction timeout.
    budget = timeout_s if timeout_s is not None else config.transaction_timeout_ms / 1000 * 3 + 60
    deadline = time.monotonic() + budget
    seen_start: set[str] = set()

    def remember(msg: Message) -> None:
        _remember_one(owned, msg, config.topics.closed_workflows)

    def restore(msg: Message) -> None:
        _restore_one(
            owned, msg.key(), msg.value(), position(msg)[1], seen_start, headers_of(msg), hooks
        )

    own_reader = consumer is None
    if consumer is None:
        consumer = range_reader(config)
    try:
        with _cyclic_gc_paused():
            closed_topic, events_topic = config.topics.closed_workflows, config.topics.events
            _read_to_end(consumer, closed_topic, partition, 0, deadline, remember)
            owned.end_offset = _read_to_end(
                consumer, events_topic, partition, low_water, deadline, restore
            )
        return owned
    finally:
        if own_reader:
            consumer.close()
        owned.rebuild_seconds = time.monotonic() - started
        log.info(
            "partition %d rebuilt: %d closed workflows remembered, %d events, %d open workflows "
            "in %.3fs",
            partition,
            owned.remembered_closed,
            owned.rebuilt_events,
            len(owned.engine.open_workflow_ids()),
            owned.rebuild_seconds,
        )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """A fold allocates millions of small objects that live on, so the cyclic collector runs
    over and over and each full pass walks everything rebuilt so far: about 40 % of a rebuild of
    100,000 workflows. Reference counting still frees what the fold drops; the collector is
    only paused while it runs (and left as it was found)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_to_end(
    consumer: Consumer,
    topic: str,
    partition: int,
    start_at: int,
    deadline: float,
    take: Callable[[Message], None],
) -> int:
    """Hand every committed record of topic/partition from `start_at` to its end (as of now)
    to `take`; returns that end offset."""
    try:
        ends = ends_when_reachable(consumer, topic, [partition])
        for msg in read_partitions(
            consumer,
            topic,
            {partition: start_at},
            deadline_s=max(0.0, deadline - time.monotonic()),
            ends=ends,
        ):
            take(msg)
    except LogReadError as exc:
        raise RebuildError(f"rebuilding partition {partition}: {exc}") from exc
    return ends[partition]


def _remember_one(owned: OwnedPartition, msg: Message, topic: str) -> None:
    value = msg.value()
    if not value:
        return  # a tombstone: that id was forgotten on purpose
    try:
        closed = codec.decode_closed(value)
    except codec.DecodeError as exc:
        # If its events lie above the low-water mark they still say it closed; if not, a repeat
        # of its start would run it again, so this is loud.
        log.error(
            "undecodable closed-workflow record at %s/%d@%d (%s) is ignored; a repeated start "
            "of that workflow is refused only while its closing event lies above the "
            "checkpoint's low-water mark: re-create the record from its closing event",
            topic,
            msg.partition(),
            msg.offset(),
            exc,
        )
        return
    owned.engine.remember(closed)
    owned.remembered_closed += 1


def _restore_one(
    owned: OwnedPartition,
    key: bytes | str | None,
    value: bytes | None,
    offset: int,
    seen_start: set[str],
    headers: RecordHeaders,
    hooks: Hooks,
) -> None:
    owned.rebuilt_events += 1
    workflow_id = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
    if owned.engine.closed_workflow(workflow_id) is not None:
        # Known closed from the index (events are keyed by workflow id): nothing of it to fold,
        # so not even decoded; a low-water mark held back by one long workflow re-reads many.
        return
    try:
        event = codec.decode_event(value or b"")
    except codec.DecodeError as exc:
        # Never skipped silently: the workflow it belongs to stops until an operator looks.
        owned.engine.quarantine(workflow_id, f"undecodable event at offset {offset}: {exc}")
        return
    if event.seq == 0:
        return  # a recorded rejection; not part of any history
    if isinstance(event.body, WorkflowStarted):
        seen_start.add(event.workflow_id)
    elif event.workflow_id not in seen_start and not isinstance(event.body, CLOSING_EVENTS):
        # Its run began before the low-water mark, so it was closed when the checkpoint was
        # written; only its closing event matters (the engine then knows it as closed, for
        # duplicate-start and closed-workflow rejections).
        return
    owned.engine.restore(event)
    hooks.restored(event, headers)
    owned.note_appended(event, offset)
