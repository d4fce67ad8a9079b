"""The one way sagaflow hands a record to a Kafka producer.

`produce` waits out a full local queue (BufferError: librdkafka's buffer is full until the
broker acknowledges what is queued) by serving the producer's delivery reports, and turns any
error librdkafka raises at once (a record over the size limit, an unknown topic, a fenced
transactional producer) into the triage outcomes of `sagaflow.kafka.triage`: AbortRequired or
FatalKafkaError, never a bare KafkaException. Errors found later, at delivery, reach the
`on_delivery` callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sagaflow.kafka import triage
from sagaflow.kafka.records import to_kafka

DeliveryCallback = Callable[[KafkaError | None, Message], None]


def produce(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | str | None,
    *,
    headers: Sequence[tuple[str, bytes]] = (),
    partition: int | None = None,
    on_delivery: DeliveryCallback | None = None,
    full_queue_timeout_s: float = 60.0,
) -> None:
    """Queue one record; raises triage.AbortRequired / triage.FatalKafkaError on errors."""
    kwargs: dict[str, Any] = {}
    if headers:
        kwargs["headers"] = to_kafka(headers)
    if partition is not None:
        kwargs["partition"] = partition
    if on_delivery is not None:
        kwargs["on_delivery"] = on_delivery
    raw_key = key.encode() if isinstance(key, str) else key
    deadline = time.monotonic() + full_queue_timeout_s

    def attempt() -> bool:
        try:
            producer.produce(topic, value, raw_key, **kwargs)
            return True
        except BufferError:
            return False

    while not triage.call(attempt, f"produce to {topic}"):
        if time.monotonic() > deadline:
            raise triage.AbortRequired(
                f"producer queue for {topic} stayed full for {full_queue_timeout_s:.0f}s; "
                "is the broker reachable? (see the client's connection warnings)"
            )
        producer.poll(0.05)  # serve delivery reports so the queue drains


def describe_error(err: KafkaError | KafkaException) -> str:
    """One line naming a delivery error, for logs and exceptions."""
    if isinstance(err, KafkaException):
        return triage.describe(err)
    return f"{err.name()}: {err.str()}"
