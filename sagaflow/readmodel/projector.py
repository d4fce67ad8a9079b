"""The read model projector: the events topic, folded into Postgres for the API and the UI.

It reads with read_committed in its own consumer group, so it only ever sees what the
orchestrator committed. Per batch: decode (undecodable -> dlq, logged with partition and
offset), write everything in one Postgres transaction, then commit the consumed offsets. A crash
between the two replays the batch, which changes nothing (idempotent on (workflow_id, seq)).

A dependency going away is never fatal: while Postgres or the broker is unreachable the
projector rewinds its consumer to the batch it could not finish, says which dependency is away
(`away()`, shown on /readyz), retries with a bounded exponential backoff, and resumes from the
same offsets once it is back. Only a fatal Kafka error or a missing topic stops it.

Runs as a thread inside the orchestrator (SAGAFLOW_PROJECTOR=on) or alone as
`python -m sagaflow.readmodel`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core.errors import FatalError, SagaflowError
from sagaflow.core.messages import Event
from sagaflow.db import describe_url, migrate
from sagaflow.kafka import triage
from sagaflow.kafka.admin import topic_max_message_bytes
from sagaflow.kafka.clients import command_producer, group_consumer
from sagaflow.kafka.dlq import DEFAULT_RECORD_LIMIT, DLQ_TOPIC_MAX_BYTES, dead_letter, record_limit
from sagaflow.kafka.produce import produce
from sagaflow.readmodel.store import Located, store_batch

log = logging.getLogger(__name__)

PROJECTOR_GROUP = "sagaflow-projector"
STAGE_DECODE = "projector.decode"
STAGE_STORE = "projector.store"
_OFFSET_INVALID = -1001
_LAG_REFRESH_S = 1.0
_BACKOFF_FIRST_S = 0.2
_BACKOFF_MAX_S = 5.0
POSTGRES = "postgres"
KAFKA = "kafka"
# What a lost or refused Postgres connection raises; anything else from psycopg is a bug or data.
_PG_AWAY = (psycopg.OperationalError, psycopg.InterfaceError)

Decoder = Callable[[bytes], Event]


class ProjectorError(FatalError):
    """The projector cannot go on (schema, topic); the message says what to fix."""


class DependencyAway(SagaflowError):
    """Postgres or the broker did not answer; the batch in hand is rewound and retried."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency}: {detail}")
        self.dependency = dependency
        self.detail = detail


class Projector:
    """Consumes the events topic into the read model tables.

    `lag()` may be read from any thread (the metrics engineer's gauge): events written to the
    topic and not yet committed by this projector, summed over its partitions.
    """

    def __init__(
        self,
        config: Config,
        *,
        group_id: str = PROJECTOR_GROUP,
        batch_max: int = 500,
        decode: Decoder = codec.decode_event,
    ) -> None:
        self.config = config
        self.group_id = group_id
        self.batch_max = batch_max
        self._decode = decode
        self._lag: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        self._commit_failed: set[int] = set()
        self._lag_checked = 0.0
        self._consumer: Consumer | None = None
        self._dlq: Producer | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._migrated = False
        self._dlq_limit = DEFAULT_RECORD_LIMIT
        self._away: dict[str, str] = {}
        self._backoff = _BACKOFF_FIRST_S
        self.outages = 0
        """Times a dependency went away (for tests and logs)."""
        self.projected = 0
        """Events written (including ones that turned out to be replays); for tests and logs."""
        self.dead_lettered = 0

    # ------------------------------------------------------------------ observing

    def lag(self) -> int:
        return sum(self._lag.values())

    def lag_by_partition(self) -> dict[int, int]:
        return dict(self._lag)

    def away(self) -> dict[str, str]:
        """{dependency: what went wrong} for each dependency the projector is waiting for;
        empty when it is projecting normally. Safe to read from any thread."""
        return dict(self._away)

    # ------------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Project until `stop` is set. Raises ProjectorError or FatalKafkaError when it can't;
        never because Postgres or the broker went away (see the module docstring)."""
        topic = self.config.topics.events
        self._consumer = group_consumer(self.config, self.group_id)
        self._dlq = command_producer(
            self.config,
            **{"client.id": "sagaflow-projector-dlq", "message.max.bytes": DLQ_TOPIC_MAX_BYTES},
        )
        try:
            if not self._wait_for_topic(stop):
                return
            self._consumer.subscribe(
                [topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            log.info(
                "projector consuming %s as group %s into %s",
                topic,
                self.group_id,
                describe_url(self.config.database_url),
            )
            while not stop.is_set():
                self._guarded_iteration(stop)
        finally:
            self._consumer.close()
            self._dlq.flush(10)
            if self._conn is not None:
                self._conn.close()
            log.info("projector stopped")

    def _wait_for_topic(self, stop: threading.Event) -> bool:
        """Checks the events topic exists (waiting out an unreachable broker); False if
        stopped first. Also learns how large a dead letter the dlq topic takes."""
        topic = self.config.topics.events
        while not stop.is_set():
            try:
                md = triage.call(
                    lambda: self._consumer_or_die().list_topics(topic, timeout=10), "list_topics"
                )
                self._dlq_limit = self._dead_letter_limit()
            except triage.AbortRequired as exc:
                self._dependency_away(DependencyAway(KAFKA, str(exc)), stop)
                continue
            tmeta = md.topics.get(topic)
            if tmeta is None or tmeta.error is not None:
                raise ProjectorError(
                    f"topic {topic} is missing at {self.config.kafka_bootstrap}; "
                    "create the topics with 'sagaflow topics create'"
                )
            self._dependency_back(KAFKA)
            return True
        return False

    def _dead_letter_limit(self) -> int:
        dlq = self.config.topics.dlq
        try:
            topic_limit = topic_max_message_bytes(self.config, dlq)
        except triage.AbortRequired as exc:
            log.warning(
                "projector: cannot read max.message.bytes of %s (%s); dead letters are cut "
                "to %d bytes. Grant DescribeConfigs on the topic to use its own limit",
                dlq,
                exc,
                DEFAULT_RECORD_LIMIT,
            )
            return DEFAULT_RECORD_LIMIT
        return record_limit(DLQ_TOPIC_MAX_BYTES, topic_limit)

    def _guarded_iteration(self, stop: threading.Event) -> None:
        """One batch; a dependency going away rewinds it and waits, instead of propagating."""
        positions: dict[int, int] = {}
        try:
            self._iterate(positions)
        except DependencyAway as exc:
            self._rewind(positions)
            self._dependency_away(exc, stop)

    def _dependency_away(self, exc: DependencyAway, stop: threading.Event) -> None:
        if exc.dependency not in self._away:
            self.outages += 1
            log.warning(
                "projector: %s is unreachable (%s); not ready, retrying with backoff up to "
                "%.0fs. The read model resumes where it stopped once it is back",
                exc.dependency,
                exc.detail,
                _BACKOFF_MAX_S,
            )
        else:
            log.info("projector: %s still unreachable (%s)", exc.dependency, exc.detail)
        self._away[exc.dependency] = exc.detail
        stop.wait(self._backoff)  # backoff before retrying a dependency, not synchronisation
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)

    def _dependency_back(self, dependency: str) -> None:
        if self._away.pop(dependency, None) is not None:
            log.info("projector: %s is reachable again; projecting", dependency)
        if not self._away:
            self._backoff = _BACKOFF_FIRST_S

    def _rewind(self, positions: dict[int, int]) -> None:
        """Seek back to the first record of the batch that was not finished, so the next
        iteration reads it again (its offsets were not committed)."""
        consumer = self._consumer_or_die()
        topic = self.config.topics.events
        assigned = {tp.partition for tp in consumer.assignment()}
        for partition, offset in sorted(positions.items()):
            if partition not in assigned:
                continue  # revoked meanwhile: its next owner starts from the committed offset
            try:
                triage.call(
                    lambda p=partition, o=offset: consumer.seek(  # type: ignore[misc]
                        TopicPartition(topic, p, o)
                    ),
                    "seek",
                    deadline_s=5,
                )
            except triage.AbortRequired as exc:
                # The partition is being revoked; whoever gets it reads from the commit.
                log.warning("projector: could not rewind %s[%d]: %s", topic, partition, exc)

    def _migrate(self) -> None:
        # The API's tables live in the same migrations; running them here means the read model
        # exists as soon as anything projects into it.
        if self._migrated:
            return
        try:
            applied = asyncio.run(migrate(self.config.database_url))
        except _PG_AWAY as exc:
            raise DependencyAway(POSTGRES, f"cannot migrate the read model: {exc}") from exc
        self._migrated = True
        if applied:
            log.info("projector applied migrations %s", applied)

    def _consumer_or_die(self) -> Consumer:
        assert self._consumer is not None
        return self._consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._lag.setdefault(tp.partition, 0)
        log.info(
            "projector assigned %s partitions %s",
            self.config.topics.events,
            sorted(tp.partition for tp in partitions),
        )
        self._lag_checked = 0.0

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._lag.pop(tp.partition, None)
            self._committed.pop(tp.partition, None)
            self._commit_failed.discard(tp.partition)

    # ------------------------------------------------------------------ one batch

    def _iterate(self, positions: dict[int, int]) -> None:
        """One batch. `positions` is filled with the first offset read per partition, for the
        caller to rewind to if a dependency goes away before the batch is committed."""
        self._migrate()
        if POSTGRES in self._away:
            # Probe before reading on: an idle topic would otherwise never show it is back.
            self._store([], [])
        consumer = self._consumer_or_die()
        messages = consumer.consume(self.batch_max, 0.2)
        batch: list[Located] = []
        dead: list[tuple[Message, str]] = []
        offsets: dict[int, int] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise triage.FatalKafkaError(
                        f"projector consumer failed fatally ({err.name()}: {err.str()}); "
                        "restart the process"
                    )
                if err.code() != KafkaError._PARTITION_EOF:
                    # librdkafka reports transient broker trouble here and retries by itself.
                    log.warning("projector consumer: %s: %s", err.name(), err.str())
                continue
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None  # set on every fetched record
            positions.setdefault(partition, offset)
            offsets[partition] = offset + 1
            try:
                event = self._decode(msg.value() or b"")
            except codec.DecodeError as exc:
                log.error(
                    "projector: undecodable event at %s[%d]@%d (%s); dead-lettered, "
                    "moving on. Inspect it with 'sagaflow dlq list'",
                    msg.topic(),
                    partition,
                    offset,
                    exc,
                )
                dead.append((msg, f"cannot decode event: {exc}"))
                continue
            batch.append(Located(event, partition, offset))
        if batch:
            dead += self._store(batch, messages)
        if dead:
            self._dead_letter(dead)
        if offsets:
            self._commit(offsets)
        self._refresh_lag()

    def _store(
        self, batch: Sequence[Located], messages: Sequence[Message]
    ) -> list[tuple[Message, str]]:
        """Write the batch; returns the events Postgres refused as data (to be dead-lettered).

        An empty batch only checks that Postgres answers. Raises DependencyAway when Postgres
        is unreachable (the caller rewinds and retries).
        """
        dead: list[tuple[Message, str]] = []
        try:
            conn = self._connection()
            try:
                if batch:
                    store_batch(conn, batch)
                else:
                    conn.execute("SELECT 1")
                self.projected += len(batch)
            except psycopg.DataError:
                # One event Postgres cannot hold (e.g. a NUL in a JSON string) must not stop
                # the partition: find it by storing the events one at a time.
                dead = self._store_one_by_one(conn, batch, messages)
        except _PG_AWAY as exc:
            self._drop_connection()
            raise DependencyAway(
                POSTGRES,
                f"{describe_url(self.config.database_url)}: {str(exc).strip() or type(exc)}",
            ) from exc
        self._dependency_back(POSTGRES)
        return dead

    def _store_one_by_one(
        self, conn: psycopg.Connection[Any], batch: Sequence[Located], messages: Sequence[Message]
    ) -> list[tuple[Message, str]]:
        by_position = {(m.partition(), m.offset()): m for m in messages if m.error() is None}
        dead: list[tuple[Message, str]] = []
        for item in batch:
            try:
                store_batch(conn, [item])
                self.projected += 1
            except psycopg.DataError as exc:
                log.error(
                    "projector: Postgres refused event %s seq %d at %s[%d]@%d (%s); "
                    "dead-lettered, moving on",
                    item.event.workflow_id,
                    item.event.seq,
                    self.config.topics.events,
                    item.partition,
                    item.offset,
                    exc,
                )
                dead.append(
                    (
                        by_position[(item.partition, item.offset)],
                        f"read model cannot store event: {exc}",
                    )
                )
        return dead

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.config.database_url, autocommit=True, connect_timeout=5
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            # Closing a connection whose server is gone only frees the client side.
            self._conn.close()
        self._conn = None

    def _dead_letter(self, dead: Sequence[tuple[Message, str]]) -> None:
        """Produce the dead letters and wait for them; DependencyAway if the broker does not
        take them (the batch is then rewound, so nothing is committed past an undelivered one;
        a letter delivered late may then be in the dlq twice, which is harmless)."""
        producer = self._dlq
        assert producer is not None
        try:
            for msg, reason in dead:
                stage = STAGE_DECODE if reason.startswith("cannot decode") else STAGE_STORE
                letter = dead_letter(msg, reason, stage, max_bytes=self._dlq_limit)
                produce(
                    producer,
                    self.config.topics.dlq,
                    letter.value,
                    letter.key,
                    headers=letter.headers,
                )
        except triage.AbortRequired as exc:
            raise DependencyAway(KAFKA, str(exc)) from exc
        # The offsets are committed only once the dead letters are safely in the dlq.
        remaining = producer.flush(30)
        if remaining:
            raise DependencyAway(
                KAFKA,
                f"{remaining} dead letter(s) not delivered to {self.config.topics.dlq} within 30s",
            )
        self.dead_lettered += len(dead)

    def _commit(self, offsets: dict[int, int]) -> None:
        topic = self.config.topics.events
        tps = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
        try:
            triage.call(
                lambda: self._consumer_or_die().commit(offsets=tps, asynchronous=False),
                "commit offsets",
            )
        except triage.AbortRequired as exc:
            # Typically a rebalance took the partition: its next owner projects the batch
            # again, which changes nothing.
            log.warning("projector: offsets not committed (%s); the batch will be re-read", exc)
            self._commit_failed.update(offsets)
            return
        self._committed.update(offsets)
        self._commit_failed.difference_update(offsets)

    # ------------------------------------------------------------------ lag

    def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_checked < _LAG_REFRESH_S:
            return
        self._lag_checked = now
        try:
            self._read_lag()
        except triage.AbortRequired as exc:
            # A broker restart or a leader change (NOT_LEADER_FOR_PARTITION, UNKNOWN_PARTITION)
            # only makes the lag figure stale; the consumer reconnects by itself.
            if KAFKA not in self._away:
                self.outages += 1
                log.warning(
                    "projector: cannot read the lag of %s (%s); keeping the last figures "
                    "and retrying in %.0fs",
                    self.config.topics.events,
                    exc,
                    _LAG_REFRESH_S,
                )
            self._away[KAFKA] = f"lag refresh failed: {exc}"
            return
        self._dependency_back(KAFKA)

    def _read_lag(self) -> None:
        consumer = self._consumer_or_die()
        topic = self.config.topics.events
        assigned = [tp.partition for tp in consumer.assignment()]
        unknown = [TopicPartition(topic, p) for p in assigned if p not in self._committed]
        if unknown:
            for tp in triage.call(
                lambda: consumer.committed(unknown, timeout=5), "committed", deadline_s=5
            ):
                self._committed[tp.partition] = max(tp.offset, 0)
        positions = {
            tp.partition: tp.offset
            for tp in triage.call(
                lambda: consumer.position([TopicPartition(topic, p) for p in assigned]),
                "position",
            )
        }
        for p in assigned:
            _low, high = triage.call(
                lambda p=p: consumer.get_watermark_offsets(  # type: ignore[misc]
                    TopicPartition(topic, p), timeout=5
                ),
                "watermarks",
                deadline_s=5,
            )
            # The consumer's position skips transaction markers (the last offset of a topic
            # written transactionally is a marker, never a record), so when everything read
            # was committed, the position is the better "done up to".
            done = self._committed.get(p, 0)
            if p not in self._commit_failed:
                done = max(done, positions.get(p, _OFFSET_INVALID))
            self._lag[p] = max(high - done, 0)
