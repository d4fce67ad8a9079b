"""The one way sagaflow reads a range of a log: rebuild, checkpoints, the client's follow and the
CLI all call `read_partitions`.

A range ends where the partition ends *now*:
- given `ends` (from `end_offsets`: rebuild, checkpoints): the high watermarks as of that call;
  with read_committed the reader waits there for in-doubt transactions to resolve, so nothing
  that may still commit is skipped (bounded by the deadline: an open transaction that never
  ends is an error that names its cause);
- without (the CLI, quick looks): the first end-of-partition the consumer reports (for
  read_committed, the last stable offset).
With `follow`, the reader keeps waiting for new records past the end until `stop` or the
deadline, and then simply ends.

Every failure is a `LogReadError` that names the topic, the partitions and what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from sagaflow.core.errors import SagaflowError
from sagaflow.kafka import triage
from sagaflow.kafka.records import position

log = logging.getLogger(__name__)


class LogReadError(SagaflowError):
    """A log range could not be read to its end; the message says where and what to do."""


def partitions_of(consumer: Consumer, topic: str, *, timeout_s: float = 10.0) -> list[int]:
    """The partition numbers of `topic`; LogReadError naming the command that creates it."""
    try:
        md = triage.call(
            lambda: consumer.list_topics(topic, timeout=timeout_s), f"metadata of {topic}"
        )
    except (triage.AbortRequired, triage.FatalKafkaError) as exc:
        raise LogReadError(
            f"cannot read the metadata of {topic} ({exc}); is the broker up?"
        ) from exc
    tmeta = md.topics.get(topic)
    if tmeta is None or tmeta.error is not None or not tmeta.partitions:
        raise LogReadError(
            f"topic {topic} is missing; create the topics with 'sagaflow topics create' (an "
            "upgrade to a version that adds a topic needs it too)"
        )
    return sorted(tmeta.partitions)


def read_partitions(
    consumer: Consumer,
    topic: str,
    starts: Mapping[int, int],
    *,
    deadline_s: float,
    ends: Mapping[int, int] | None = None,
    follow: bool = False,
    stop: Callable[[Message], bool] = lambda _m: False,
    idle: Callable[[], bool] = lambda: False,
) -> Iterator[Message]:
    """Every committed record of `topic` from {partition: start offset} to each partition's end
    (see the module doc), in offset order per partition. `stop(msg)` ends the iteration after
    `msg`; `idle()` is asked when nothing arrived for a moment and ends it when true. The
    consumer is unassigned afterwards."""
    deadline = time.monotonic() + deadline_s
    if ends is not None:
        open_parts = {p for p, start in starts.items() if start < ends.get(p, 0)}
        assigned = set(starts) if follow else open_parts
    else:
        open_parts = set(starts)
        assigned = open_parts
    if not assigned:
        return
    consumer.assign(
        [
            TopicPartition(topic, p, starts[p] if starts[p] > 0 else OFFSET_BEGINNING)
            for p in assigned
        ]
    )
    try:
        while follow or open_parts:
            if time.monotonic() > deadline:
                if follow:
                    return
                raise LogReadError(
                    f"reading {topic} partitions {sorted(open_parts)} did not reach the end "
                    f"within {deadline_s:.0f}s; an open transaction may be holding "
                    "read_committed back, or the broker is unhealthy: check the broker, retry"
                )
            msg = consumer.poll(0.1 if follow else 0.02)
            if msg is None:
                if ends is not None:
                    _settle_reached(consumer, topic, ends, open_parts)
                if idle():
                    return
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    if ends is None:
                        open_parts.discard(position(msg)[0])
                    else:
                        _settle_reached(consumer, topic, ends, open_parts)
                    continue
                raise LogReadError(
                    f"reading {topic} failed: {err}; check the broker and the topic, then retry"
                )
            yield msg
            if stop(msg):
                return
            p, offset = position(msg)
            if ends is not None and offset + 1 >= ends.get(p, 0):
                open_parts.discard(p)
    finally:
        consumer.unassign()


def ends_when_reachable(
    consumer: Consumer, topic: str, partitions: Sequence[int] | None
) -> dict[int, int]:
    """{partition: high watermark} of `partitions` (None: all of the topic's), waiting with
    backoff for as long as the broker is away (a restart can take minutes; nothing can be
    rebuilt without it, and a dependency going away must not end the process). A missing topic
    or partition is reported at once: waiting would not create it."""
    backoff = 0.2
    while True:
        try:
            known = partitions_of(consumer, topic)
            wanted = known if partitions is None else list(partitions)
            missing = sorted(set(wanted) - set(known))
            if missing:
                raise LogReadError(
                    f"topic {topic} has no partition {missing}; create the missing topics with "
                    "'sagaflow topics create' (an upgrade to a version that adds a topic needs "
                    "it too)"
                )
            return end_offsets(consumer, topic, wanted)
        except LogReadError as exc:
            if not isinstance(exc.__cause__, triage.AbortRequired):
                raise
            log.warning("%s; waiting %.1fs for the broker", exc, backoff)
            time.sleep(backoff)  # backoff while the broker is away
            backoff = min(backoff * 2, 5.0)


def end_offsets(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int]:
    """{partition: high watermark} as of now: where a range read with `ends` stops."""
    return {p: watermarks(consumer, topic, p)[1] for p in partitions}


def watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """(low, high) watermark of one partition, asked of the broker (never cached)."""
    try:
        lo, hi = triage.call(
            lambda: consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            ),
            f"watermarks of {topic}",
        )
    except (triage.AbortRequired, triage.FatalKafkaError) as exc:
        raise LogReadError(
            f"cannot read the offsets of {topic} partition {partition} ({exc}); is the broker up?"
        ) from exc
    return int(lo), int(hi)


def _settle_reached(
    consumer: Consumer, topic: str, ends: Mapping[int, int], open_parts: set[int]
) -> None:
    """Close the partitions whose position passed their end (the last records of a range may be
    transaction markers, which are never handed out)."""
    if not open_parts:
        return
    for tp in consumer.position([TopicPartition(topic, p) for p in open_parts]):
        if tp.offset >= 0 and tp.offset >= ends.get(tp.partition, 0):
            open_parts.discard(tp.partition)
