"""Answers to queries and updates addressed to closed workflows.

The engine keeps only a compact record of a closed workflow, so the orchestrator reads the last
run's history back from its events partition (read_committed, to the partition's end as of
now) and lets the core answer from it: a query from the replayed final state, a repeated update
id from its recorded result. This happens after the batch that consumed the request committed,
so the history read includes everything that batch recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Consumer, Producer

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core import interactions
from sagaflow.core.messages import (
    ClosedWorkflow,
    Event,
    QueryWorkflow,
    ReplyToCaller,
    UpdateWorkflow,
)
from sagaflow.core.registry import Registry
from sagaflow.kafka import triage
from sagaflow.kafka.clients import reader
from sagaflow.kafka.logread import LogReadError, end_offsets, read_partitions
from sagaflow.kafka.produce import produce

Ask = tuple[int, ClosedWorkflow, QueryWorkflow | UpdateWorkflow]
"""A query or update to a closed workflow: (its partition, the closed record, the command)."""

log = logging.getLogger(__name__)

HISTORY_READ_S = 20.0
"""Bound on reading one closed workflow's partition; the caller's own deadline is usually
shorter, and a repeat of the question is always safe."""


def closed_history(
    config: Config, consumer: Consumer, partition: int, closed: ClosedWorkflow
) -> list[Event]:
    """The events of the closed workflow's last run, in seq order."""
    topic = config.topics.events
    ends = end_offsets(consumer, topic, [partition])
    key = closed.workflow_id.encode()
    run: dict[int, Event] = {}
    for msg in read_partitions(
        consumer, topic, {partition: 0}, deadline_s=HISTORY_READ_S, ends=ends
    ):
        if msg.key() != key:
            continue
        try:
            event = codec.decode_event(msg.value() or b"")
        except codec.DecodeError:
            continue  # an undecodable record quarantined its workflow long ago; not this run
        if event.seq > 0 and event.run_id == closed.run_id:
            run[event.seq] = event
    return [run[seq] for seq in sorted(run)]


def answer_closed(
    config: Config,
    registry: Registry,
    consumer: Consumer,
    partition: int,
    closed: ClosedWorkflow,
    command: QueryWorkflow | UpdateWorkflow,
) -> ReplyToCaller:
    try:
        history = closed_history(config, consumer, partition, closed)
    except LogReadError as exc:
        log.warning("cannot answer %s for closed %s: %s", command.name, closed.workflow_id, exc)
        return interactions.reply(
            command,
            False,
            error_type="HistoryUnavailable",
            message=f"{exc}; ask again",
        )
    return interactions.answer_closed(registry, command, closed, history)


def answer_all(config: Config, registry: Registry, producer: Producer, asks: Sequence[Ask]) -> bool:
    """Answer queries and updates to closed workflows from their recorded history, in a
    transaction of their own (the batch that consumed them has committed). False when that
    transaction must be given up: the producer is then to be renewed, and the lost answers cost
    their callers a timeout (asking again is safe)."""
    consumer = reader(config)
    try:
        replies = [
            answer_closed(config, registry, consumer, p, closed, command)
            for p, closed, command in asks
        ]
    finally:
        consumer.close()
    try:
        triage.call(producer.begin_transaction, "begin_transaction")
        for reply in replies:
            produce(producer, config.topics.replies, codec.encode_reply(reply), reply.reply_to)
        producer.flush(30)
        triage.call(lambda: producer.commit_transaction(30), "commit_transaction")
    except triage.AbortRequired as exc:
        log.warning("%s; %d answer(s) to closed workflows not sent", exc, len(replies))
        return False
    return True
