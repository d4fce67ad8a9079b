"""The read model projector: the events topic, folded into Postgres for the API and the UI.

It reads with read_committed in its own consumer group, so it only ever sees what the
orchestrator committed. Per batch: decode (undecodable -> dlq, logged with partition and
offset), write everything in one Postgres transaction, then commit the consumed offsets. A crash
between the two replays the batch, which changes nothing (idempotent on (workflow_id, seq)).

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
from sagaflow.core.messages import Event
from sagaflow.db import describe_url, migrate
from sagaflow.kafka import triage
from sagaflow.kafka.clients import command_producer, group_consumer
from sagaflow.kafka.dlq import dead_letter
from sagaflow.readmodel.store import Located, store_batch

log = logging.getLogger(__name__)

PROJECTOR_GROUP = "sagaflow-projector"
STAGE_DECODE = "projector.decode"
STAGE_STORE = "projector.store"
_OFFSET_INVALID = -1001
_LAG_REFRESH_S = 1.0

Decoder = Callable[[bytes], Event]


class ProjectorError(RuntimeError):
    """The projector cannot go on (schema, topic); the message says what to fix."""


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
        self.projected = 0
        """Events written (including ones that turned out to be replays); for tests and logs."""
        self.dead_lettered = 0

    # ------------------------------------------------------------------ observing

    def lag(self) -> int:
        return sum(self._lag.values())

    def lag_by_partition(self) -> dict[int, int]:
        return dict(self._lag)

    # ------------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Project until `stop` is set. Raises ProjectorError or FatalKafkaError when it can't."""
        self._migrate()
        topic = self.config.topics.events
        self._consumer = group_consumer(self.config, self.group_id)
        self._dlq = command_producer(self.config, **{"client.id": "sagaflow-projector-dlq"})
        md = triage.call(
            lambda: self._consumer_or_die().list_topics(topic, timeout=10), "list_topics"
        )
        tmeta = md.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            raise ProjectorError(
                f"topic {topic} is missing at {self.config.kafka_bootstrap}; "
                "create the topics with 'sagaflow topics create'"
            )
        self._consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        log.info(
            "projector consuming %s as group %s into %s",
            topic,
            self.group_id,
            describe_url(self.config.database_url),
        )
        try:
            while not stop.is_set():
                self._iterate(stop)
        finally:
            self._consumer.close()
            self._dlq.flush(10)
            if self._conn is not None:
                self._conn.close()
            log.info("projector stopped")

    def _migrate(self) -> None:
        # The API's tables live in the same migrations; running them here means the read model
        # exists as soon as anything projects into it.
        try:
            applied = asyncio.run(migrate(self.config.database_url))
        except psycopg.OperationalError as exc:
            raise ProjectorError(
                f"cannot reach Postgres at {describe_url(self.config.database_url)} to migrate "
                f"the read model ({exc}); check SAGAFLOW_DATABASE_URL and that it is up"
            ) from exc
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

    def _iterate(self, stop: threading.Event) -> None:
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
            dead += self._store(batch, messages, stop)
        if dead:
            self._dead_letter(dead)
        if offsets:
            self._commit(offsets)
        self._refresh_lag()

    def _store(
        self, batch: Sequence[Located], messages: Sequence[Message], stop: threading.Event
    ) -> list[tuple[Message, str]]:
        """Write the batch; returns the events Postgres refused as data (to be dead-lettered)."""
        backoff = 0.2
        while True:
            conn = self._connection()
            try:
                store_batch(conn, batch)
                self.projected += len(batch)
                return []
            except psycopg.DataError:
                # One event Postgres cannot hold (e.g. a NUL in a JSON string) must not stop
                # the partition: find it by storing the events one at a time.
                return self._store_one_by_one(conn, batch, messages)
            except psycopg.OperationalError as exc:
                self._drop_connection()
                if stop.is_set():
                    raise ProjectorError(
                        "stopping while Postgres is unreachable; the batch "
                        "is not committed and will be projected again"
                    ) from exc
                log.warning(
                    "projector: Postgres at %s unreachable (%s); retrying in %.1fs",
                    describe_url(self.config.database_url),
                    exc,
                    backoff,
                )
                stop.wait(backoff)  # backoff before reconnecting, not synchronisation
                backoff = min(backoff * 2, 5.0)

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
            self._conn.close()
        self._conn = None

    def _dead_letter(self, dead: Sequence[tuple[Message, str]]) -> None:
        producer = self._dlq
        assert producer is not None
        for msg, reason in dead:
            stage = STAGE_DECODE if reason.startswith("cannot decode") else STAGE_STORE
            letter = dead_letter(msg, reason, stage)
            triage.call(
                lambda letter=letter: producer.produce(  # type: ignore[misc]
                    self.config.topics.dlq, letter.value, letter.key, headers=letter.headers
                ),
                "dlq produce",
            )
        # The offsets are committed only once the dead letters are safely in the dlq.
        remaining = producer.flush(30)
        if remaining:
            raise ProjectorError(
                f"{remaining} dead letter(s) not delivered to "
                f"{self.config.topics.dlq} within 30s; is the broker up?"
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
        consumer = self._consumer_or_die()
        topic = self.config.topics.events
        assigned = [tp.partition for tp in consumer.assignment()]
        unknown = [TopicPartition(topic, p) for p in assigned if p not in self._committed]
        if unknown:
            for tp in triage.call(lambda: consumer.committed(unknown, timeout=5), "committed"):
                self._committed[tp.partition] = max(tp.offset, 0)
        positions = {
            tp.partition: tp.offset
            for tp in consumer.position([TopicPartition(topic, p) for p in assigned])
        }
        for p in assigned:
            _low, high = triage.call(
                lambda p=p: consumer.get_watermark_offsets(  # type: ignore[misc]
                    TopicPartition(topic, p), timeout=5
                ),
                "watermarks",
            )
            # The consumer's position skips transaction markers (the last offset of a topic
            # written transactionally is a marker, never a record), so when everything read
            # was committed, the position is the better "done up to".
            done = self._committed.get(p, 0)
            if p not in self._commit_failed:
                done = max(done, positions.get(p, _OFFSET_INVALID))
            self._lag[p] = max(high - done, 0)
