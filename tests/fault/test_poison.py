"""A poison record on the commands topic lands in the dlq with its reason and origin, and the
partition moves on: the other workflows keep going."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from sagaflow.core.messages import WorkflowCompleted
from sagaflow.kafka.clients import command_producer
from sagaflow.kafka.dlq import origin
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(180)]


def _dead_letters(d: Deployment) -> list[tuple[bytes | None, dict[str, str]]]:
    c = Consumer(
        {
            **d.config.kafka_common(),
            "group.id": "dlq-reader",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        c.assign([TopicPartition(d.config.topics.dlq, 0, 0)])
        out = []
        while True:
            msg = c.poll(5)
            if msg is None:
                return out
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(str(msg.error()))
            out.append((msg.value(), origin(msg.headers())))
    finally:
        c.close()


def test_poison_command_goes_to_dlq(deployment: Deployment) -> None:
    d = deployment
    d.orchestrator()
    d.worker()
    client = d.client()
    before = [d.wid(f"before-poison-{i}") for i in range(3)]
    after = [d.wid(f"after-poison-{i}") for i in range(3)]
    for w in before:
        client.start("checkout", order(w), workflow_id=w)
    poison = command_producer(d.config)
    # Same key as a live workflow, so it lands on a partition that has real work.
    poison.produce(d.config.topics.commands, b"\x00not avro at all\xff", before[0].encode())
    assert poison.flush(10) == 0
    for w in after:
        client.start("checkout", order(w), workflow_id=w)

    closed = d.wait_closed(before + after, timeout_s=120)

    assert all(isinstance(e.body, WorkflowCompleted) for e in closed.values())
    letters = assert_eventually(
        lambda: _dead_letters(d), timeout=20, message="poison record in the dlq"
    )
    value, headers = letters[0]
    assert value == b"\x00not avro at all\xff"
    assert headers["sagaflow.dlq.source.topic"] == d.config.topics.commands
    assert "undecodable command" in headers["sagaflow.dlq.reason"]
    assert int(headers["sagaflow.dlq.source.offset"]) >= 0
