"""The orchestrator's loop: commands in, one Kafka transaction per batch out.

Per batch: decode each command (undecodable -> dlq), let the partition's engine decide, fire
due timers, then in ONE transaction append the events to events-p, produce the effects
(activity tasks, commands to other workflows, replies to waiting callers), write a checkpoint
now and then, and commit the consumed command offsets (KIP-447: the consumer's group metadata
fences a zombie that lost the partition). An abortable error aborts the transaction, drops the
batch's state by rebuilding the partitions the batch touched from the log, and rewinds their
consumer positions to the committed offsets. A fatal error leaves the loop with an exception so
the process exits non-zero and is restarted.

No transaction is ever open while the consumer runs its rebalance callbacks: the loop commits
before it polls again, so on revocation there is nothing in flight to finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core.messages import (
    ActivityCancellation,
    ActivityTask,
    ClosedWorkflow,
    CommandToWorkflow,
    Decision,
    Effect,
    Event,
    QueryWorkflow,
    ReplyToCaller,
    UpdateWorkflow,
)
from sagaflow.core.registry import Registry
from sagaflow.faults import fault_point
from sagaflow.kafka import triage
from sagaflow.kafka.clients import group_consumer, transactional_producer
from sagaflow.kafka.dlq import dead_letter
from sagaflow.kafka.partition import partition_for
from sagaflow.kafka.produce import produce
from sagaflow.kafka.records import headers_of, position
from sagaflow_orchestrator import answers, checkpoints
from sagaflow_orchestrator.handover import Handover
from sagaflow_orchestrator.hooks import ConsumedCommand, Decided, Fired, Hooks
from sagaflow_orchestrator.rebuild import OwnedPartition, range_reader, rebuild_partition

log = logging.getLogger(__name__)

RETIRED_PRODUCERS = 3
"""Replaced producers kept alive a while (see Orchestrator._renew_producer)."""

Clock = Callable[[], float]


@dataclass
class _Outgoing:
    """What one batch will produce, gathered before the transaction opens."""

    decided: list[Decided] = field(default_factory=list)
    events: int = 0
    tasks: int = 0
    """Effects produced (activity tasks, commands to other workflows, replies)."""
    dead: list[tuple[Message, str]] = field(default_factory=list)
    closed: list[tuple[int, ClosedWorkflow]] = field(default_factory=list)
    """Workflows closed by this batch, remembered in the closed-workflows topic."""
    rerouted: list[tuple[int, str, Message]] = field(default_factory=list)
    """Commands that landed on a partition that does not own their workflow id: (the owning
    partition, the workflow id, the record), produced there keyed by the id."""
    offsets: dict[int, int] = field(default_factory=dict)
    commands: int = 0
    touched: set[int] = field(default_factory=set)
    """Partitions whose engine or consumer position this batch moved: all that an abort must
    rebuild and rewind (the others' state is still what the log has committed)."""
    closed_asks: list[answers.Ask] = field(default_factory=list)
    """Queries and updates to closed workflows: answered from the log once this batch has
    committed (sagaflow_orchestrator.answers)."""

    def empty(self) -> bool:
        return not (self.decided or self.dead or self.offsets or self.rerouted)


@dataclass
class Status:
    """What /readyz and the metrics read; written only by the loop's thread."""

    assigned: frozenset[int] = frozenset()
    rebuilding: frozenset[int] = frozenset()
    ready: bool = False
    last_commit_ms: int = 0
    commits: int = 0
    aborts: int = 0


class Orchestrator:
    def __init__(
        self,
        config: Config,
        registry: Registry,
        *,
        clock: Clock = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.clock = clock
        self.hooks = hooks or Hooks()
        self.status = Status()
        self.transactional_id = f"sagaflow-orchestrator-{config.instance_id}"
        self._owned: dict[int, OwnedPartition] = {}
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._last_checkpoint = 0.0
        self._pending_resume: set[int] = set()
        self._command_partitions: int | None = None
        self._retired: list[Producer] = []
        self._handover = Handover(config, self.transactional_id)

    # ------------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Raises FatalKafkaError (or RebuildError) on fatal trouble."""
        topics = self.config.topics
        self._producer = self._new_producer()
        # The group's client id is the transactional id: a new owner of a dead member's
        # partitions finds out whom to fence by it (handover.py).
        self._consumer = group_consumer(
            self.config, self.config.orchestrator_group, **{"client.id": self.transactional_id}
        )
        self._consumer.subscribe(
            [topics.commands],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info("orchestrator %s consuming %s", self.transactional_id, topics.commands)
        try:
            self._iterate()  # joins the group; an assignment is rebuilt before this returns
            # Ready means "not rebuilding": a replica that owns no partition (more replicas than
            # partitions) is a ready standby, not a pod that blocks a rollout.
            self.status.ready = not self.status.rebuilding
            while not stop.is_set():
                try:
                    self._iterate()
                except triage.FatalKafkaError as exc:
                    if triage.fenced(exc):
                        raise  # another process holds our transactional id: it must win
                    # The producer's transactional state is unusable (a broker restart can do
                    # this): a new producer with the same id fences the old transaction, and
                    # the owned partitions are rebuilt from what the log has committed.
                    log.error("%s; renewing the producer and rebuilding from the log", exc)
                    self._renew_producer()
                    self._abort_and_rewind(abort=False)
        finally:
            # Leaving the group hands the partitions over at once instead of after the session
            # timeout; no transaction is open between iterations.
            self.status.ready = False
            self._consumer.close()
            _flush_quietly(self._producer)
            log.info("orchestrator %s stopped", self.transactional_id)

    def _renew_producer(self) -> None:
        """Replace the transactional producer. The old one is kept (not destroyed here: its
        destruction could wait on the very state that failed) until newer ones replace it; the
        new producer's epoch fences it."""
        if self._producer is not None:
            self._retired.append(self._producer)
            del self._retired[:-RETIRED_PRODUCERS]
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        """A transactional producer with this process's id, its transactions initialised
        (waiting with backoff while the broker is away)."""
        producer = transactional_producer(self.config, self.transactional_id)
        backoff = 0.5
        while True:
            try:
                triage.call(lambda: producer.init_transactions(30), "init_transactions")
                return producer
            except triage.AbortRequired as exc:
                log.warning("%s; is the broker up? retrying in %.1fs", exc, backoff)
                time.sleep(backoff)  # backoff while the broker is away
                backoff = min(backoff * 2, 5.0)

    def _producer_or_die(self) -> Producer:
        assert self._producer is not None
        return self._producer

    def _consumer_or_die(self) -> Consumer:
        assert self._consumer is not None
        return self._consumer

    # ------------------------------------------------------------------ rebalance

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        new = sorted(tp.partition for tp in partitions)
        if not new:
            self._handover.note_members()
            return
        self.status.rebuilding = frozenset(new)
        self.status.ready = False
        now_ms = int(self.clock() * 1000)
        # A member that died inside a transaction holds these partitions' committed offsets
        # back until the broker aborts it (10-20 s); fencing it aborts it now.
        self._handover.release(new)
        self._handover.note_members()
        for p, owned in self._rebuild(new).items():
            self._owned[p] = owned
            self.hooks.rebuilt(p, owned.rebuilt_events, owned.rebuild_seconds)
            # Parked workflows get another go under this process's (possibly newer) code.
            self._pending_resume.add(p)
        self.status.assigned = frozenset(self._owned)
        self.status.rebuilding = frozenset()
        self.status.ready = True
        log.info(
            "assigned commands partitions %s (now own %s) at %d", new, sorted(self._owned), now_ms
        )

    def _rebuild(self, partitions: Sequence[int]) -> dict[int, OwnedPartition]:
        """Rebuild `partitions` from their checkpoints, through one reader."""
        lows = checkpoints.read_all(self.config)
        rebuilt: dict[int, OwnedPartition] = {}
        consumer = range_reader(self.config)
        try:
            for p in partitions:
                low = lows.get(checkpoints.key(self.config.topics.events, p))
                rebuilt[p] = rebuild_partition(
                    self.config,
                    self.registry,
                    p,
                    low.low_water if low is not None else 0,
                    hooks=self.hooks,
                    consumer=consumer,
                )
        finally:
            consumer.close()
        return rebuilt

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._handover.note_members()
        for tp in partitions:
            self._owned.pop(tp.partition, None)
            self._pending_resume.discard(tp.partition)
        self.status.assigned = frozenset(self._owned)
        log.info("revoked commands partitions %s", sorted(tp.partition for tp in partitions))

    # ------------------------------------------------------------------ the batch

    def _iterate(self) -> None:
        consumer = self._consumer_or_die()
        timeout = self.config.commit_interval_ms / 1000
        due = self._next_due_ms()
        if due is not None:
            timeout = max(0.0, min(timeout, due / 1000 - self.clock()))
        # Wait (blocked, not spinning) for the first command, then take whatever has arrived
        # behind it: no fixed gather time, so an idle orchestrator answers at once, and under
        # load everything that queued while the previous transaction committed forms the next
        # batch.
        first = consumer.poll(max(timeout, 0.001))
        msgs = [first] if first is not None else []
        if first is not None and self.config.batch_max > 1:
            msgs += consumer.consume(self.config.batch_max - 1, timeout=0)
        out = _Outgoing()
        now_ms = int(self.clock() * 1000)
        for msg in msgs:
            self._take(msg, out, now_ms)
        for p in sorted(self._pending_resume):
            owned = self._owned.get(p)
            if owned is not None:
                out.touched.add(p)
                self._emit(p, owned.engine.resume_parked(now_ms), out, Fired("resumed", now_ms))
        self._pending_resume.clear()
        for p, owned in sorted(self._owned.items()):
            nd = owned.engine.next_due_ms()
            if nd is not None and nd <= now_ms:
                out.touched.add(p)
                self._emit(p, owned.engine.fire_due(now_ms), out, Fired("due", now_ms))
        checkpoint_due = (
            self.clock() - self._last_checkpoint
        ) * 1000 >= self.config.checkpoint_interval_ms
        if out.empty() and not (checkpoint_due and self._owned):
            return
        committed = self._commit(out, with_checkpoint=checkpoint_due)
        if committed and out.closed_asks:
            producer = self._producer_or_die()
            if not answers.answer_all(self.config, self.registry, producer, out.closed_asks):
                self._renew_producer()

    def _take(self, msg: Message, out: _Outgoing, now_ms: int) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", err)
            return
        p, offset = position(msg)
        owned = self._owned.get(p)
        if owned is None:
            return  # fetched just before a revocation; the new owner will read it
        out.offsets[p] = offset + 1
        out.touched.add(p)
        out.commands += 1
        try:
            command = codec.decode_command(msg.value() or b"")
        except codec.DecodeError as exc:
            out.dead.append((msg, f"undecodable command: {exc}"))
            self.hooks.dead_lettered("orchestrator.decode")
            return
        owner = self._owner_of(command.workflow_id)
        if owner != p:
            # Produced without a key or with another key than the workflow id: decided here, its
            # workflow's reports (keyed by the id) would all land elsewhere. Send it where it
            # belongs, in this batch's transaction, instead of deciding it.
            out.rerouted.append((owner, command.workflow_id, msg))
            return
        closed = owned.engine.needs_history(command)
        if closed is not None and isinstance(command, QueryWorkflow | UpdateWorkflow):
            out.closed_asks.append((p, closed, command))
            return
        started = time.perf_counter()
        decision = owned.engine.handle(command, now_ms)
        cause = ConsumedCommand(
            command, msg.topic() or "", p, offset, msg.key(), tuple(headers_of(msg))
        )
        self._emit(p, decision, out, cause, time.perf_counter() - started)

    def _owner_of(self, workflow_id: str) -> int:
        """The commands partition of a workflow id, by the producers' partitioner (murmur2)."""
        if self._command_partitions is None:
            topic = self.config.topics.commands
            md = triage.call(
                lambda: self._consumer_or_die().list_topics(topic, timeout=10), "list commands"
            )
            self._command_partitions = len(md.topics[topic].partitions)
        return partition_for(workflow_id.encode(), self._command_partitions)

    def _emit(
        self,
        p: int,
        decision: Decision,
        out: _Outgoing,
        cause: ConsumedCommand | Fired,
        seconds: float = 0.0,
    ) -> None:
        if not (
            decision.events
            or decision.effects
            or decision.closed
            or isinstance(cause, ConsumedCommand)
        ):
            return
        out.closed.extend((p, closed) for closed in decision.closed)
        out.decided.append(Decided(p, decision, cause, seconds))
        out.events += len(decision.events)
        out.tasks += len(decision.effects)

    def _next_due_ms(self) -> int | None:
        dues = [d for o in self._owned.values() if (d := o.engine.next_due_ms()) is not None]
        return min(dues) if dues else None

    # ------------------------------------------------------------------ the transaction

    def _commit(self, out: _Outgoing, *, with_checkpoint: bool) -> bool:
        """Produce the batch in one transaction; False when it was aborted (and rewound)."""
        producer = self._producer_or_die()
        consumer = self._consumer_or_die()
        topics = self.config.topics
        appended: list[tuple[int, Event, int]] = []
        started = time.perf_counter()
        try:
            headers = self.hooks.batch(out.decided)
            triage.call(producer.begin_transaction, "begin_transaction")
            for i, d in enumerate(out.decided):
                h = headers[i] if headers is not None else None
                for j, event in enumerate(d.decision.events):
                    self._produce(
                        producer,
                        topics.events,
                        codec.encode_event(event),
                        event.workflow_id,
                        d.partition,
                        h.events[j] if h is not None else [],
                        _recorder(appended, d.partition, event),
                    )
                for j, effect in enumerate(d.decision.effects):
                    topic, key, value = self._effect_record(effect)
                    self._produce(
                        producer,
                        topic,
                        value,
                        key,
                        None,
                        h.effects[j] if h is not None else [],
                        None,
                    )
            for p, closed in out.closed:
                data = codec.encode_closed(closed)
                self._produce(
                    producer, topics.closed_workflows, data, closed.workflow_id, p, [], None
                )
            for p, workflow_id, msg in out.rerouted:
                value = msg.value() or b""
                self._produce(
                    producer, topics.commands, value, workflow_id, p, headers_of(msg), None
                )
            for msg, reason in out.dead:
                # dead_letter() fits the copy into the producer's default message.max.bytes
                # whatever arrived, and any refusal is triaged (abort and rewind), never raised.
                dl = dead_letter(msg, reason, "orchestrator")
                produce(producer, topics.dlq, dl.value, dl.key, headers=dl.headers)
            if with_checkpoint:
                self._produce_checkpoints(producer)
            if out.offsets:
                # The metadata names the committer: a later owner of the partition fences it by
                # that id if it dies inside a transaction (handover.py).
                offsets = [
                    TopicPartition(topics.commands, p, o, metadata=self.transactional_id)
                    for p, o in out.offsets.items()
                ]
                meta = consumer.consumer_group_metadata()
                triage.call(
                    lambda: producer.send_offsets_to_transaction(offsets, meta, 30),
                    "send_offsets_to_transaction",
                )
            # flush serves the delivery reports that carry the events' offsets
            producer.flush(30)
            if out.events:
                # Events in the log, offsets sent, nothing committed: a death here leaves an
                # open transaction for the next owner to get past (handover.py).
                fault_point("orchestrator_in_transaction")
            triage.call(lambda: producer.commit_transaction(30), "commit_transaction")
        except triage.AbortRequired as exc:
            # Only the partitions this batch touched are rebuilt: a group change aborts the
            # batch in flight (ILLEGAL_GENERATION on its offsets) just when the partitions of a
            # lost member wait for this process, and the others' state is still the log's.
            touched = sorted(out.touched & set(self._owned))
            if triage.group_moved(exc):
                # The producer is healthy: aborting its transaction takes a round trip, where a
                # new producer waits for the coordinator to abort the old one's (0.5-1 s).
                log.warning("%s; rewinding partitions %s", exc, touched)
                self._abort_and_rewind(partitions=touched)
                return False
            # A new producer with the same transactional id aborts the failed transaction at
            # the coordinator: more robust than abort_transaction on a producer whose state the
            # error may have damaged (after a broker restart, an out-of-order sequence left
            # librdkafka waiting for an epoch bump that never came, blocking every later call).
            log.warning("%s; renewing the producer and rewinding partitions %s", exc, touched)
            self._renew_producer()
            self._abort_and_rewind(abort=False, partitions=touched)
            return False
        elapsed = time.perf_counter() - started
        for p, event, offset in appended:
            owned = self._owned.get(p)
            if owned is not None:
                owned.note_appended(event, offset)
        if with_checkpoint:
            self._last_checkpoint = self.clock()
        self.status.commits += 1
        self.status.last_commit_ms = int(self.clock() * 1000)
        self.hooks.committed(out.commands, out.events, out.tasks, len(out.dead), elapsed)
        return True

    def _effect_record(self, effect: Effect) -> tuple[str, str, bytes | None]:
        """Where an effect goes: (topic, key, value). Keys route by the default partitioner,
        like every producer's, so a command lands on its target workflow's partition."""
        topics = self.config.topics
        match effect:
            case ActivityTask():
                return (
                    topics.tasks(effect.task_queue),
                    effect.workflow_id,
                    codec.encode_task(effect),
                )
            case CommandToWorkflow():
                command = effect.command
                return topics.commands, command.workflow_id, codec.encode_command(command)
            case ReplyToCaller():
                return topics.replies, effect.reply_to, codec.encode_reply(effect)
            case ActivityCancellation():
                # A tombstone (None) once the activity settled: compaction then drops the key.
                return (
                    topics.activity_cancels,
                    effect.idempotency_key,
                    codec.encode_cancellation(effect),
                )
            case _:
                assert_never(effect)

    def _produce(
        self,
        producer: Producer,
        topic: str,
        value: bytes | None,
        key: str,
        partition: int | None,
        headers: list[tuple[str, bytes]],
        on_delivery: Callable[[Any, Message], None] | None,
    ) -> None:
        produce(
            producer,
            topic,
            value,
            key,
            headers=headers,
            partition=partition,
            on_delivery=on_delivery,
        )

    def _produce_checkpoints(self, producer: Producer) -> None:
        now_ms = int(self.clock() * 1000)
        for p, owned in self._owned.items():
            cp = checkpoints.Checkpoint(
                self.config.topics.events,
                p,
                owned.low_water(),
                owned.end_offset,
                len(owned.engine.open_workflow_ids()),
                now_ms,
            )
            produce(
                producer,
                self.config.topics.checkpoints,
                checkpoints.encode(cp),
                checkpoints.key(self.config.topics.events, p),
            )

    def _abort_and_rewind(
        self, *, abort: bool = True, partitions: Collection[int] | None = None
    ) -> None:
        """Abort the batch's transaction, rebuild `partitions` (None: every owned one) from the
        log and seek them back to the committed offsets. While Kafka is away (a broker restart:
        NOT_COORDINATOR, transport errors) this waits with backoff, unready, instead of ending
        the process."""
        producer = self._producer_or_die()
        self.status.aborts += 1
        self.hooks.aborted()  # nothing of the batch happened
        if abort:
            try:
                triage.call(lambda: producer.abort_transaction(30), "abort_transaction")
            except triage.AbortRequired as exc:
                # The producer cannot even abort (the broker may be restarting): a new one with
                # the same transactional id aborts the transaction at the coordinator instead.
                log.warning("%s; renewing the producer", exc)
                self._renew_producer()
        backoff = 0.2
        while True:
            try:
                self._rewind(partitions)
                self.status.ready = not self.status.rebuilding
                return
            except triage.AbortRequired as exc:
                self.status.ready = False
                log.warning(
                    "rewinding after an aborted batch failed (%s); is the broker restarting? "
                    "retrying in %.1fs",
                    exc,
                    backoff,
                )
                time.sleep(backoff)  # backoff while Kafka is away
                backoff = min(backoff * 2, 5.0)

    def _rewind(self, partitions: Collection[int] | None) -> None:
        consumer = self._consumer_or_die()
        wanted = self._owned if partitions is None else partitions
        owned = sorted(p for p in wanted if p in self._owned)
        if not owned:
            return
        tps = [TopicPartition(self.config.topics.commands, p) for p in owned]
        committed = triage.call(lambda: consumer.committed(tps, timeout=30), "committed")
        for p, rebuilt in self._rebuild(owned).items():
            self._owned[p] = rebuilt
            self.hooks.rebuilt(p, rebuilt.rebuilt_events, rebuilt.rebuild_seconds)
        for tp in committed:
            self._pending_resume.add(tp.partition)
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    # ------------------------------------------------------------------ introspection

    def owned_partitions(self) -> Sequence[int]:
        return sorted(self._owned)


def _recorder(
    appended: list[tuple[int, Event, int]], p: int, event: Event
) -> Callable[[Any, Message], None]:
    def on_delivery(err: Any, msg: Message) -> None:
        if err is None:
            appended.append((p, event, position(msg)[1]))

    return on_delivery


def _flush_quietly(producer: Producer) -> None:
    """Flush on the way out; a producer already in a fatal state has nothing left to deliver."""
    try:
        triage.call(lambda: producer.flush(10), "flush")
    except (triage.AbortRequired, triage.FatalKafkaError) as exc:
        log.warning("leaving without flushing the producer: %s", exc)
