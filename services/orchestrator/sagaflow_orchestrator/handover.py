"""Taking over partitions from an orchestrator that died inside a transaction.

An orchestrator killed between its first produce and its commit leaves a transaction open: its
batch's records sit on its events partitions and its consumed offsets are pending on its
commands partitions. The new owner's consumer cannot fetch those partitions' committed offsets
(UNSTABLE_OFFSET_COMMIT, as KIP-447 wants) until the broker aborts the transaction, after the
dead producer's transaction.timeout.ms and the broker's next sweep for timed-out transactions:
measured 8-13 s of extra failover whenever the kill landed mid-batch. And a rebuild that reads
to the last stable offset before that abort would miss the batch if a paused (zombie) owner
could still commit it.

The new owner therefore aborts it at once, the way a restart of the dead process would: it
initialises a producer with the dead process's transactional id, which bumps the epoch and
makes the coordinator abort the open transaction. It learns that id from the committed offsets
of the commands partitions, whose metadata is the committing orchestrator's transactional id,
or, when that partition was never committed by its last owner (it died in its first
transaction there), from the members seen at the previous rebalance. It does this only when all
of these hold:
- an open transaction holds back what the rebuild of the new partitions reads (a last stable
  offset lags its high watermark; nothing is fenced otherwise);
- the one fenced is not this process;
- it is no longer a member of the group (each orchestrator's group client id is its
  transactional id). A member that handed a partition over in a rebalance is alive and keeps its
  transactions; only a dead or expelled (zombie) one is fenced, and a fenced zombie exits on its
  next transaction as it would anyway.
Anything that fails here only costs time: the rebuild then waits for the broker, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    OffsetSpec,
)

from sagaflow.config import Config
from sagaflow.kafka import triage
from sagaflow.kafka.clients import transactional_producer

log = logging.getLogger(__name__)

ADMIN_TIMEOUT_S = 3.0
"""Bound of all the questions to the broker before a takeover: fencing only saves time, so when
the cluster cannot answer quickly (a broker just died, leaders are moving) the takeover goes on
without it instead of waiting here."""

FENCE_TIMEOUT_S = 10.0

FENCE_RETRY_BACKOFF_MAX_MS = 100
"""init_transactions of the fencing producer is answered CONCURRENT_TRANSACTIONS until the
coordinator has written the abort; librdkafka's default backoff (up to 1 s) would add most of a
second to a failover, so the fencing producer asks again every 100 ms at most."""


class Handover:
    """Fences departed owners whose open transactions hold newly assigned partitions back."""

    def __init__(self, config: Config, transactional_id: str) -> None:
        self.config = config
        self.transactional_id = transactional_id
        self._admin: AdminClient | None = None
        self._deadline = 0.0
        self._previous_members: set[str] = set()

    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(dict(self.config.kafka_common()))
        return self._admin

    def release(self, partitions: Sequence[int]) -> list[str]:
        """Abort the open transactions of departed owners that hold `partitions` back; returns
        the transactional ids fenced. Never raises: a failure leaves the rebuild to wait."""
        self._deadline = time.monotonic() + ADMIN_TIMEOUT_S
        try:
            stuck = self._stuck(partitions)
            if not stuck:
                return []
            # Whoever held them: their last committer, or a member seen at an earlier rebalance
            # (one that died in its first transaction on them never committed an offset).
            candidates = self._last_committers(stuck) | self._previous_members
            departed = sorted(candidates - self._members() - {self.transactional_id, ""})
        except (triage.AbortRequired, triage.FatalKafkaError, TimeoutError) as exc:
            log.warning(
                "could not tell whether a departed orchestrator's transaction holds partitions "
                "%s back (%r); their rebuild waits for the broker to abort it, up to "
                "transaction.timeout.ms",
                sorted(partitions),
                exc,
            )
            return []
        return [t for t in departed if self._fence(t, stuck)]

    def note_members(self) -> None:
        """Remember the group's members as of this rebalance: the candidates, at the next one,
        for having left a transaction open. Never raises (fencing only saves time)."""
        self._deadline = time.monotonic() + ADMIN_TIMEOUT_S
        try:
            self._previous_members = self._members()
        except (triage.AbortRequired, triage.FatalKafkaError, TimeoutError) as exc:
            log.info("could not list the orchestrator group's members (%r)", exc)

    def _left(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def _wait(self) -> float:
        """How long the next answer may take (the admin client retries inside it; a future
        that failed would only fail again, so its result is never asked twice)."""
        return max(0.1, self._left())

    def _stuck(self, partitions: Sequence[int]) -> list[int]:
        """`partitions` if a rebuild of them would wait on an open transaction: on their
        events or closed-workflows logs, or on any checkpoints partition (a rebuild reads them
        all, and they are not aligned with the commands partitions), else none."""
        topics = self.config.topics
        tps = [
            TopicPartition(t, p)
            for t in (topics.events, topics.closed_workflows)
            for p in partitions
        ]
        tps += [TopicPartition(topics.checkpoints, p) for p in self._partitions(topics.checkpoints)]
        stable = self._latest(tps, IsolationLevel.READ_COMMITTED)
        high = self._latest(tps, IsolationLevel.READ_UNCOMMITTED)
        held = any(stable[_k(tp)] < high[_k(tp)] for tp in tps)
        return sorted(partitions) if held else []

    def _partitions(self, topic: str) -> list[int]:
        md = triage.call(
            lambda: self.admin().list_topics(topic, timeout=ADMIN_TIMEOUT_S),
            topic,
            deadline_s=self._left(),
        )
        described = md.topics.get(topic)
        return sorted(described.partitions) if described is not None else []

    def _latest(
        self, tps: list[TopicPartition], isolation: IsolationLevel
    ) -> dict[tuple[str, int], int]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        futures = self.admin().list_offsets(
            {tp: latest for tp in tps},
            isolation_level=isolation,
            request_timeout=ADMIN_TIMEOUT_S,
        )
        offsets: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            info = triage.call(partial(future.result, self._wait()), "list offsets", deadline_s=0)
            offsets[_k(tp)] = int(info.offset)
        return offsets

    def _last_committers(self, partitions: Sequence[int]) -> set[str]:
        """The transactional ids in the committed offsets' metadata of commands partitions."""
        group = self.config.orchestrator_group
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(self.config.topics.commands, p) for p in partitions]
        )
        futures = self.admin().list_consumer_group_offsets(
            [request], require_stable=False, request_timeout=ADMIN_TIMEOUT_S
        )
        result = triage.call(
            partial(futures[group].result, self._wait()), "group offsets", deadline_s=0
        )
        return {tp.metadata or "" for tp in result.topic_partitions or []}

    def _members(self) -> set[str]:
        group = self.config.orchestrator_group
        futures = self.admin().describe_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)
        described = triage.call(
            partial(futures[group].result, self._wait()), "describe group", deadline_s=0
        )
        return {m.client_id for m in described.members}

    def _fence(self, transactional_id: str, partitions: list[int]) -> bool:
        started = time.monotonic()
        producer = transactional_producer(
            self.config,
            transactional_id,
            **{"retry.backoff.max.ms": FENCE_RETRY_BACKOFF_MAX_MS},
        )
        try:
            triage.call(
                lambda: producer.init_transactions(FENCE_TIMEOUT_S),
                "init_transactions (fence)",
                deadline_s=FENCE_TIMEOUT_S,
            )
        except (triage.AbortRequired, triage.FatalKafkaError) as exc:
            log.warning(
                "fencing departed orchestrator %s failed (%s); the rebuild of partitions %s "
                "waits for the broker to abort its transaction",
                transactional_id,
                exc,
                partitions,
            )
            return False
        log.warning(
            "orchestrator %s left the group inside a transaction that held partitions %s back; "
            "fenced it (its transaction aborted) in %.3fs",
            transactional_id,
            partitions,
            time.monotonic() - started,
        )
        return True


def _k(tp: TopicPartition) -> tuple[str, int]:
    return (tp.topic, tp.partition)
