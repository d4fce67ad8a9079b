"""A poison record of about 1 MB on the commands topic (issue 10, finding 4): its dead letter,
headers and all, would exceed the maximum message size. It must still be dead-lettered, cut to
fit with its size, hash and origin in headers, and the workflows behind it must start; the
orchestrator stays alive."""

from __future__ import annotations

import hashlib
import os

import pytest

from sagaflow.core.messages import WorkflowCompleted
from sagaflow.kafka.clients import command_producer
from sagaflow.kafka.dlq import DEFAULT_RECORD_LIMIT
from tests.fault.test_poison import _dead_letters
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(180)]

# Just under the broker's default max.message.bytes (1,048,588) of the commands topic, so the
# broker accepts it; as a dead letter with headers it is over every default limit.
POISON_BYTES = 1_040_000


def test_a_1mb_poison_command_is_dead_lettered_truncated(deployment: Deployment) -> None:
    d = deployment
    orchestrator = d.orchestrator()
    d.worker()
    client = d.client()
    before = [d.wid(f"before-big-poison-{i}") for i in range(2)]
    after = [d.wid(f"after-big-poison-{i}") for i in range(3)]
    for w in before:
        client.start("checkout", order(w), workflow_id=w)
    head = b"\x00not avro\xff"
    poison = head + os.urandom(POISON_BYTES - len(head))
    producer = command_producer(d.config, **{"message.max.bytes": 2 * POISON_BYTES})
    # Same key as a live workflow, so it lands on a partition that has real work behind it.
    producer.produce(d.config.topics.commands, poison, before[0].encode())
    assert producer.flush(10) == 0
    for w in after:
        client.start("checkout", order(w), workflow_id=w)

    closed = d.wait_closed(before + after, timeout_s=120)

    assert all(isinstance(e.body, WorkflowCompleted) for e in closed.values())
    assert orchestrator.alive(), orchestrator.tail()
    letters = assert_eventually(
        lambda: _dead_letters(d), timeout=20, message="the large poison record in the dlq"
    )
    assert len(letters) == 1
    value, headers = letters[0]
    assert value is not None and 0 < len(value) < DEFAULT_RECORD_LIMIT
    assert poison.startswith(value), "the payload is cut, not altered"
    assert headers["sagaflow.dlq.truncated"] == "value"
    assert headers["sagaflow.dlq.original.size"] == str(POISON_BYTES)
    assert headers["sagaflow.dlq.original.sha256"] == hashlib.sha256(poison).hexdigest()
    assert headers["sagaflow.dlq.source.topic"] == d.config.topics.commands
    assert int(headers["sagaflow.dlq.source.offset"]) >= 0
    assert "undecodable command" in headers["sagaflow.dlq.reason"]
