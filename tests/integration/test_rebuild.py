"""Rebuilding a partition from the events log on a real broker: committed events are folded,
events of an aborted transaction are never applied, and a checkpoint bounds what is read."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from sagaflow import codec
from sagaflow.client import payload
from sagaflow.core.engine import Engine
from sagaflow.core.messages import Event, StartWorkflow, WorkflowCompleted
from sagaflow.examples.checkout import registry
from sagaflow.kafka.clients import transactional_producer
from sagaflow_orchestrator.rebuild import rebuild_partition
from tests.sagas import Deployment, order

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _produce(producer: Producer, d: Deployment, events: tuple[Event, ...]) -> None:
    for e in events:
        producer.produce(
            d.config.topics.events, codec.encode_event(e), e.workflow_id.encode(), partition=0
        )


def test_aborted_events_are_never_applied(deployment: Deployment) -> None:
    d = deployment
    engine = Engine(registry)
    started = engine.handle(
        StartWorkflow("w-aborted", "checkout", payload(order("w-aborted"))), now_ms=1_000
    )
    assert started.events, "the start decided events"
    producer = transactional_producer(d.config, "test-rebuild-writer")
    producer.init_transactions(30)
    producer.begin_transaction()
    _produce(producer, d, started.events)
    producer.commit_transaction(30)
    last = started.events[-1]
    forged = Event(
        last.workflow_id,
        last.seq + 1,
        last.run_id,
        2_000,
        WorkflowCompleted(payload({"forged": True})),
    )
    producer.begin_transaction()
    _produce(producer, d, (forged,))
    producer.abort_transaction(30)

    owned = rebuild_partition(d.config, registry, 0, low_water=0, timeout_s=30)

    assert owned.engine.status("w-aborted") == "running"
    assert owned.engine.history("w-aborted") == started.events
    assert owned.start_offsets["w-aborted"] == 0


def test_rebuild_starts_at_the_checkpoint(deployment: Deployment) -> None:
    d = deployment
    engine = Engine(registry)
    first = engine.handle(StartWorkflow("w-old", "checkout", payload(order("w-old"))), 1_000)
    second = engine.handle(StartWorkflow("w-new", "checkout", payload(order("w-new"))), 1_000)
    producer = transactional_producer(d.config, "test-rebuild-writer-2")
    producer.init_transactions(30)
    producer.begin_transaction()
    _produce(producer, d, first.events + second.events)
    producer.commit_transaction(30)

    owned = rebuild_partition(d.config, registry, 0, low_water=len(first.events), timeout_s=30)

    assert owned.engine.status("w-new") == "running"
    assert owned.engine.status("w-old") is None, "events before the low-water mark are not read"
    assert owned.rebuilt_events == len(second.events)
