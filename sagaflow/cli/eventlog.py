"""Reading workflow histories straight from the events topic.

A workflow's events are on partition murmur2(workflow_id) % partitions of the events topic (the
partition number of its commands), so one workflow needs one partition, never the whole topic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sagaflow import codec
from sagaflow.cli.kafkaio import (
    open_reader,
    partition_count,
    position,
    read_partitions,
)
from sagaflow.config import Config
from sagaflow.core.messages import Event
from sagaflow.kafka.partition import partition_for


@dataclass(frozen=True)
class Logged:
    """An event and where it sits in the log."""

    event: Event
    partition: int
    offset: int


@dataclass(frozen=True)
class Undecodable:
    """A record of the events topic that is not an event (the orchestrator quarantines it)."""

    partition: int
    offset: int
    key: bytes | None
    reason: str


def events_partition(config: Config, workflow_id: str, partitions: int) -> int:
    return partition_for(workflow_id.encode(), partitions)


def workflow_events(
    config: Config,
    workflow_id: str,
    *,
    timeout_s: float = 30.0,
    follow: bool = False,
    stop: Callable[[Event], bool] = lambda _e: False,
) -> Iterator[Logged | Undecodable]:
    """One workflow's events (and undecodable records under its key), oldest first.

    Without `follow`, ends at the partition's current end; with it, waits for more until
    `stop(event)` is true or `timeout_s` passes (then simply ends).
    """
    consumer = open_reader(config)
    try:
        topic = config.topics.events
        partition = events_partition(config, workflow_id, partition_count(config, consumer, topic))
        key = workflow_id.encode()
        stopped = False

        def done(_msg: object) -> bool:
            return stopped

        for msg in read_partitions(
            config, consumer, topic, {partition: 0}, timeout_s=timeout_s, follow=follow, stop=done
        ):
            if msg.key() != key:
                continue
            offset = position(msg)[1]
            try:
                event = codec.decode_event(msg.value() or b"")
            except codec.DecodeError as exc:
                yield Undecodable(partition, offset, msg.key(), str(exc))
                continue
            if event.workflow_id != workflow_id:
                continue
            yield Logged(event, partition, offset)
            stopped = stop(event)
    finally:
        consumer.close()


def all_events(config: Config, *, timeout_s: float = 120.0) -> Iterator[Logged | Undecodable]:
    """Every record of the events topic, every partition from its start to its current end."""
    consumer = open_reader(config)
    try:
        topic = config.topics.events
        n = partition_count(config, consumer, topic)
        for msg in read_partitions(
            config, consumer, topic, dict.fromkeys(range(n), 0), timeout_s=timeout_s
        ):
            p, offset = position(msg)
            try:
                event = codec.decode_event(msg.value() or b"")
            except codec.DecodeError as exc:
                yield Undecodable(p, offset, msg.key(), str(exc))
                continue
            yield Logged(event, p, offset)
    finally:
        consumer.close()
