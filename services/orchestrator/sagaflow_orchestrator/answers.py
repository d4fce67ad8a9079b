"""Answers to queries and updates addressed to closed workflows.

The engine keeps only a compact record of a closed workflow, so the orchestrator reads the last
run's history back from its events partition (read_committed, to the partition's end as of
now) and lets the core answer from it: a query from the replayed final state, a repeated update
id from its recorded result. This happens after the batch that consumed the request committed,
so the history read includes everything that batch recorded.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core import interactions
from sagaflow.core.messages import (
    REPLY_FAILED,
    ClosedWorkflow,
    Event,
    QueryWorkflow,
    Reply,
    UpdateWorkflow,
)
from sagaflow.core.registry import Registry
from sagaflow.kafka.logread import LogReadError, end_offsets, read_partitions

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
) -> Reply:
    try:
        history = closed_history(config, consumer, partition, closed)
    except LogReadError as exc:
        log.warning("cannot answer %s for closed %s: %s", command.name, closed.workflow_id, exc)
        return interactions.reply(
            command,
            REPLY_FAILED,
            error_type="HistoryUnavailable",
            message=f"{exc}; ask again",
        )
    return interactions.answer_closed(registry, command, closed, history)
