"""Poison input during a chaos run, and the dlq latency of the summary.

At seeded times, while the faults fire, an undecodable record goes to the commands topic (the
orchestrator dead-letters it) or to a task topic (the worker does). Afterwards the dlq is read:
each poison record must have a dead-letter copy naming it as origin, and its latency is the
copy's timestamp minus the poison's (both their producers' CreateTime; the poison's producer is
connected before the first one, so its own start is not counted, and the copy's transaction
commit, milliseconds after its CreateTime, is not either). A
poison that lands while its consumer is dead or failing over waits for that, as any record
would: the figure is what an operator sees under faults, not on a quiet system.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from sagaflow.config import Config
from sagaflow.kafka.clients import command_producer, reader
from sagaflow.kafka.dlq import H_OFFSET, H_PARTITION, H_TOPIC, origin
from sagaflow.kafka.logread import ends_when_reachable, read_partitions
from sagaflow.kafka.records import headers_of
from tests.support import assert_eventually

POISON_TASK_QUEUE = "payments"
"""The task queue whose topic gets poison records (its worker dead-letters them)."""


@dataclass
class Poison:
    topic: str
    key: str
    planned_at_s: float
    partition: int = -1
    offset: int = -1
    produced_ms: int = 0
    """Its CreateTime: when it was handed to the producer."""
    copies: int = 0
    dead_lettered_ms: int | None = None
    detail: str = ""

    @property
    def sent(self) -> bool:
        return self.offset >= 0

    @property
    def latency_s(self) -> float | None:
        if self.dead_lettered_ms is None:
            return None
        return (self.dead_lettered_ms - self.produced_ms) / 1000


def plan_poison(seed: int, config: Config, count: int, span_s: float) -> list[Poison]:
    """`count` poison records over the span, alternating the commands topic and a task topic.
    Their own generator, so adding them left the sagas and faults of every older seed as
    they were."""
    rng = random.Random(f"poison-{seed}")
    times = sorted(rng.uniform(0.05, 0.9) * span_s for _ in range(count))
    topics = [config.topics.commands, config.topics.tasks(POISON_TASK_QUEUE)]
    return [
        Poison(topics[i % 2], f"chaos-poison-{seed}-{i}", round(t, 2)) for i, t in enumerate(times)
    ]


def send(producer: Producer, poison: Poison, timeout_s: float = 60.0) -> None:
    """Produce one undecodable record (a broker kill may delay it; the producer retries)."""
    delivered: list[Message] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            poison.detail = f"not produced: {err}"
        else:
            delivered.append(msg)

    value = b"\xff\x00 chaos poison: not a sagaflow command or task " + poison.key.encode()
    producer.produce(poison.topic, value, poison.key.encode(), on_delivery=on_delivery)
    if producer.flush(timeout_s) > 0:
        poison.detail = f"not delivered within {timeout_s:.0f}s"
    if delivered:
        msg = delivered[0]
        poison.partition, poison.offset = msg.partition() or 0, msg.offset() or 0
        poison.produced_ms = msg.timestamp()[1]


def collect_copies(config: Config, poisons: list[Poison], timeout_s: float) -> None:
    """Read the dlq until every sent poison has its copy (or the deadline): each poison's
    copies counted and the first one's timestamp kept."""
    wanted = {(p.topic, p.partition, p.offset): p for p in poisons if p.sent}

    def scan() -> bool:
        for p in wanted.values():
            p.copies, p.dead_lettered_ms = 0, None
        consumer = reader(config)
        try:
            topic = config.topics.dlq
            ends = ends_when_reachable(consumer, topic, None)
            for msg in read_partitions(
                consumer, topic, dict.fromkeys(ends, 0), deadline_s=30, ends=ends
            ):
                o = origin(headers_of(msg))
                key = (o.get(H_TOPIC, ""), int(o.get(H_PARTITION, -1)), int(o.get(H_OFFSET, -1)))
                poison = wanted.get(key)
                if poison is None:
                    continue
                poison.copies += 1
                if poison.dead_lettered_ms is None:
                    poison.dead_lettered_ms = msg.timestamp()[1]
        finally:
            consumer.close()
        return all(p.copies for p in wanted.values())

    if not wanted:
        return
    # Past the deadline the summary reports every poison without a copy.
    with contextlib.suppress(AssertionError):
        assert_eventually(scan, timeout=timeout_s, interval=1.0)


@dataclass(frozen=True)
class DlqFigures:
    sent: int
    dead_lettered: int
    missing: list[str]
    duplicated: list[str]
    p50_s: float | None
    max_s: float | None

    def line(self) -> str:
        if self.p50_s is None or self.max_s is None:
            return f"poison={self.dead_lettered}/{self.sent} dlq_latency=n/a"
        return (
            f"poison={self.dead_lettered}/{self.sent} "
            f"dlq_latency[p50={self.p50_s:.2f}s,max={self.max_s:.2f}s]"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "dead_lettered": self.dead_lettered,
            "missing": self.missing,
            "duplicated": self.duplicated,
            "p50_s": self.p50_s,
            "max_s": self.max_s,
        }


def figures(poisons: list[Poison]) -> DlqFigures:
    sent = [p for p in poisons if p.sent]
    latencies = [x for p in sent if (x := p.latency_s) is not None]
    return DlqFigures(
        sent=len(sent),
        dead_lettered=len(latencies),
        missing=[f"{p.topic}/{p.partition}@{p.offset}" for p in sent if not p.copies],
        duplicated=[f"{p.topic}/{p.partition}@{p.offset}" for p in sent if p.copies > 1],
        p50_s=round(statistics.median(latencies), 3) if latencies else None,
        max_s=round(max(latencies), 3) if latencies else None,
    )


def run_poison(
    config: Config, poisons: list[Poison], t0: float, errors: list[BaseException]
) -> None:
    """The poison thread: each record at its planned time, through one producer."""
    producer = command_producer(config, **{"client.id": "chaos-poison"})
    producer.list_topics(timeout=30)  # connected before the first poison's clock starts
    for poison in poisons:
        wait = t0 + poison.planned_at_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the schedule itself: a poison's planned time
        try:
            send(producer, poison)
        except BaseException as exc:  # the main thread reports it with the summary
            poison.detail = f"{type(exc).__name__}: {exc}"
            errors.append(exc)
            raise
