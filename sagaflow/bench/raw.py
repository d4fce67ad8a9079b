"""The baseline: a plain confluent-kafka exactly-once loop of the bench saga's shape.

This deliberately bypasses sagaflow (no engine, codec, idempotency table, telemetry or error
triage): it is what Kafka itself allows on this machine, so `sagaflow : raw` says how much of
it sagaflow uses. Only the client settings come from sagaflow.kafka.clients, so that both sides
use the same linger, acks, idempotence, isolation level and partitioner.

`python -m sagaflow.bench.raw orchestrator|worker INDEX`, with the SAGAFLOW_* environment of
the bench (SAGAFLOW_TOPIC_PREFIX names the raw topics):

* the raw orchestrator consumes commands (read_committed, in a group) and, per batch, in one
  transaction produces the events and one task per step plus the consumed offsets;
* the raw worker consumes tasks, produces one result command per task (poll, drain what is
  buffered, produce all, flush once) and commits its offsets asynchronously.

Records are `kind|step|ms` (events), `start` or `done|step` (commands), `step` (tasks); keyed by
workflow id. A saga has STEPS steps: started, then scheduled/completed per step, then closed.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from sagaflow.config import Config
from sagaflow.kafka.clients import command_producer, group_consumer, transactional_producer

STEPS = 5
QUEUE = "bench"
BATCH_MAX = 500


def _gather(consumer: Consumer, stopping: Callable[[], bool]) -> list[Message]:
    """Wait for one record, then take what is already buffered (bounded)."""
    while not stopping():
        first = consumer.poll(0.1)
        if first is None:
            continue
        batch = [first, *consumer.consume(BATCH_MAX - 1, 0)]
        good = []
        for m in batch:
            err = m.error()
            if err is not None:
                raise RuntimeError(f"raw loop: consuming {m.topic()} failed: {err}")
            good.append(m)
        return good
    return []


def _decide(msg: Message, now_ms: int) -> tuple[list[bytes], int | None]:
    """Events for one command, and the step of the task to schedule (None: saga closed)."""
    value = msg.value() or b""
    if value == b"start":
        return [f"started|0|{now_ms}".encode(), f"scheduled|0|{now_ms}".encode()], 0
    step = int(value.split(b"|")[1])
    done = f"completed|{step}|{now_ms}".encode()
    if step + 1 < STEPS:
        return [done, f"scheduled|{step + 1}|{now_ms}".encode()], step + 1
    return [done, f"closed|{step}|{now_ms}".encode()], None


def orchestrator(config: Config, index: int, stopping: Callable[[], bool]) -> None:
    topics = config.topics
    consumer = group_consumer(config, f"{topics.prefix}raw-orchestrator")
    producer = transactional_producer(config, f"{topics.prefix}raw-orchestrator-{index}")
    producer.init_transactions(30)
    consumer.subscribe([topics.commands])
    tasks = topics.tasks(QUEUE)
    while not stopping():
        batch = _gather(consumer, stopping)
        if not batch:
            continue
        now_ms = int(time.time() * 1000)
        producer.begin_transaction()
        for msg in batch:
            key = msg.key()
            events, step = _decide(msg, now_ms)
            for e in events:
                producer.produce(topics.events, e, key)
            if step is not None:
                producer.produce(tasks, str(step).encode(), key)
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
    consumer.close()


def worker(config: Config, index: int, stopping: Callable[[], bool]) -> None:
    topics = config.topics
    consumer = group_consumer(config, f"{topics.prefix}raw-worker")
    producer = command_producer(config, **{"client.id": f"raw-worker-{index}"})
    consumer.subscribe([topics.tasks(QUEUE)])
    while not stopping():
        batch = _gather(consumer, stopping)
        if not batch:
            continue
        ends: dict[tuple[str, int], int] = {}
        for msg in batch:
            producer.produce(topics.commands, b"done|" + (msg.value() or b"0"), msg.key())
            ends[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
        remaining = producer.flush(30)
        if remaining:
            raise RuntimeError(f"raw worker: {remaining} results not acknowledged in 30s")
        # Only after Kafka has every result: a crash before this re-runs the batch.
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        consumer.commit(offsets=offsets, asynchronous=True)
    consumer.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("orchestrator", "worker"):
        print("usage: python -m sagaflow.bench.raw orchestrator|worker INDEX", file=sys.stderr)
        return 2
    stop: list[bool] = []

    def on_term(_sig: int, _frame: Any) -> None:
        stop.append(True)

    signal.signal(signal.SIGTERM, on_term)
    config = Config.from_env()
    loop = orchestrator if argv[0] == "orchestrator" else worker
    loop(config, int(argv[1]), lambda: bool(stop))
    return 0


def start_producer(config: Config) -> Producer:
    """The driver's producer of `start` commands: the same settings as sagaflow's Client."""
    return command_producer(config, **{"client.id": "raw-driver"})


def send_starts(producer: Producer, config: Config, ids: list[str]) -> None:
    failed: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    for wid in ids:
        while True:
            try:
                producer.produce(
                    config.topics.commands, b"start", wid.encode(), on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: let librdkafka drain it
    remaining = producer.flush(30)
    if remaining or failed:
        raise RuntimeError(f"raw driver: starts not delivered ({remaining} queued, {failed[:1]})")


def parse_event(value: bytes) -> tuple[str, int, int]:
    """(kind, step, recorded ms) of a raw event record."""
    kind, step, ms = value.split(b"|")
    return kind.decode(), int(step), int(ms)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
