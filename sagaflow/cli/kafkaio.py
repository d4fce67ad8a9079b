"""The CLI's Kafka plumbing: partitioning, metadata with short timeouts, reading a log range.

Every failure to reach the broker becomes a CliError that names the broker and the fix, so the
CLI prints one line instead of a traceback or a stream of librdkafka log lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from sagaflow.cli.output import EXIT_UNAVAILABLE, CliError
from sagaflow.config import Config
from sagaflow.kafka import logread, triage
from sagaflow.kafka.clients import command_producer, reader

METADATA_TIMEOUT_S = 5.0

# --------------------------------------------------------------------------- clients

Headers = list[tuple[str, str | bytes | None]]
"""What a producer takes as headers."""


def position(msg: Message) -> tuple[int, int]:
    """(partition, offset) of a consumed record (always set on one; -1 if not)."""
    p, o = msg.partition(), msg.offset()
    return (-1 if p is None else p), (-1 if o is None else o)


def headers_of(msg: Message) -> list[tuple[str, bytes]]:
    """A record's headers as (name, bytes) pairs; a header without a value reads as b""."""
    raw = msg.headers() or []
    items = list(raw.items()) if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in items]


_quiet = logging.getLogger("sagaflow.cli.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def _ignore_client_error(_err: KafkaError) -> None:
    """Connection errors surface as timeouts of the call that needed the broker."""


def quiet() -> dict[str, Any]:
    """librdkafka settings that keep its own log lines off the CLI's stderr."""
    return {"logger": _quiet, "error_cb": _ignore_client_error}


def unreachable(config: Config, what: str, detail: object) -> CliError:
    if isinstance(detail, KafkaException) and detail.args:
        detail = detail.args[0]
    if isinstance(detail, KafkaError):
        detail = detail.str()
    return CliError(
        f"cannot reach Kafka at {config.kafka_bootstrap} ({what}: {detail}); is Kafka running "
        "there? start the local stack with `make up` or set SAGAFLOW_KAFKA_BOOTSTRAP",
        EXIT_UNAVAILABLE,
    )


def open_reader(config: Config) -> Consumer:
    return reader(config, **quiet())


def open_producer(config: Config, timeout_s: float = 10.0) -> Producer:
    """An idempotent murmur2 producer that gives up on a record after `timeout_s`."""
    return command_producer(
        config,
        **quiet(),
        **{"message.timeout.ms": int(timeout_s * 1000), "client.id": "sagaflow-cli"},
    )


def _metadata(config: Config, client: Consumer | Producer, topic: str) -> Any:
    try:
        return triage.call(
            lambda: client.list_topics(topic, timeout=METADATA_TIMEOUT_S),
            f"metadata of {topic}",
            deadline_s=0,
        )
    except (triage.AbortRequired, triage.FatalKafkaError) as exc:
        raise unreachable(config, f"metadata of {topic}", exc.__cause__ or exc) from exc


def list_topics(config: Config) -> Any:
    """Cluster metadata (all topics), or a CliError in METADATA_TIMEOUT_S if Kafka is down."""
    admin = AdminClient({**config.kafka_common(), **quiet()})
    try:
        return triage.call(
            lambda: admin.list_topics(timeout=METADATA_TIMEOUT_S), "list topics", deadline_s=0
        )
    except (triage.AbortRequired, triage.FatalKafkaError) as exc:
        raise unreachable(config, "list topics", exc.__cause__ or exc) from exc


def partition_count(config: Config, client: Consumer | Producer, topic: str) -> int:
    """How many partitions `topic` has; a CliError if the broker or the topic is missing."""
    md = _metadata(config, client, topic)
    tm = md.topics.get(topic)
    if tm is None or tm.error is not None or not tm.partitions:
        err = tm.error if tm is not None else "not in metadata"
        if (
            tm is not None
            and tm.error is not None
            and tm.error.code()
            not in (
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError._UNKNOWN_TOPIC,
            )
        ):
            raise unreachable(config, f"metadata of {topic}", err)
        raise CliError(
            f"topic {topic} does not exist at {config.kafka_bootstrap} ({err}); "
            "create the topics with `sagaflow topics create` (or check "
            "SAGAFLOW_TOPIC_PREFIX)",
            EXIT_UNAVAILABLE,
        )
    return len(tm.partitions)


def read_partition(
    config: Config,
    consumer: Consumer,
    topic: str,
    partition: int,
    *,
    start: int = 0,
    timeout_s: float = 30.0,
    stop: Callable[[Message], bool] = lambda _m: False,
) -> Iterator[Message]:
    """The committed records of one partition from offset `start` (0: its beginning) to its
    end as of now, or until `stop(message)` is true after yielding that message."""
    yield from read_partitions(
        config, consumer, topic, {partition: start}, timeout_s=timeout_s, stop=stop
    )


def read_partitions(
    config: Config,
    consumer: Consumer,
    topic: str,
    starts: dict[int, int],
    *,
    timeout_s: float = 30.0,
    follow: bool = False,
    stop: Callable[[Message], bool] = lambda _m: False,
) -> Iterator[Message]:
    """Records of `topic` from {partition: start offset} to each partition's end (the one log
    reader, sagaflow.kafka.logread); a CliError saying what to do when that fails.

    With `follow`, keeps waiting for new records past the end until `stop` or the timeout.
    A timeout while reading a fixed range is an error (the broker went away); while following it
    simply ends the iteration, and the caller decides what that means.
    """
    try:
        yield from logread.read_partitions(
            consumer, topic, starts, deadline_s=timeout_s, follow=follow, stop=stop
        )
    except logread.LogReadError as exc:
        raise CliError(
            f"{exc} (Kafka at {config.kafka_bootstrap}; raise --timeout if it is just slow)",
            EXIT_UNAVAILABLE,
        ) from exc


def read_one(
    config: Config,
    consumer: Consumer,
    topic: str,
    partition: int,
    offset: int,
    timeout_s: float = 10.0,
) -> Message:
    """The record at `offset` of `topic`/`partition`; a CliError naming the valid range if none."""
    low, high = watermarks(config, consumer, topic, partition)
    if not low <= offset < high:
        raise CliError(
            f"{topic} partition {partition} has no record at offset {offset}; "
            f"valid offsets are {low}..{high - 1} (see `sagaflow dlq list`)"
            if high > low
            else f"{topic} partition {partition} is empty"
        )
    for msg in read_partition(
        config,
        consumer,
        topic,
        partition,
        start=offset,
        timeout_s=timeout_s,
        stop=lambda m: position(m)[1] >= offset,
    ):
        if position(msg)[1] == offset:
            return msg
    raise CliError(
        f"{topic} partition {partition} offset {offset} is not a readable record "
        "(a transaction marker or an aborted record); pick another offset from "
        "`sagaflow dlq list`"
    )


def watermarks(config: Config, consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    try:
        low, high = triage.call(
            lambda: consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S
            ),
            f"offsets of {topic}",
            # A leader that is moving (a broker restart, a topic created a moment ago) answers
            # NOT_LEADER for a while: retriable, so retried briefly instead of failing the command.
            deadline_s=METADATA_TIMEOUT_S,
        )
    except (triage.AbortRequired, triage.FatalKafkaError) as exc:
        raise unreachable(config, f"offsets of {topic}", exc.__cause__ or exc) from exc
    return int(low), int(high)
