"""The batched worker under faults: a result whose delivery is lost is produced again and the
partition's committed offset still reaches the end; a task record nobody can decode goes to the
dlq and the partition moves on (it is never held uncommitted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from sagaflow.core.messages import WorkflowCompleted
from sagaflow.kafka.clients import command_producer
from sagaflow.kafka.dlq import H_REASON, H_STAGE, H_TOPIC
from tests.fault.test_poison import _dead_letters
from tests.sagas import QUEUES, Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(180)]


def _lag(d: Deployment, queue: str) -> int:
    """Records of the queue's task topic its worker group has not committed past."""
    topic = d.config.topics.tasks(queue)
    c = Consumer({**d.config.kafka_common(), "group.id": d.config.worker_group_prefix + queue})
    try:
        parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
        committed = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        lag = 0
        for tp in committed:
            _, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        c.close()


def test_lost_delivery_is_produced_again_and_offsets_advance(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    marker = tmp_path / "fired"
    d.orchestrator()
    d.worker(SAGAFLOW_FAULT="worker_publish_lost", SAGAFLOW_FAULT_MARKER=str(marker))
    ids = [d.wid(f"lost-publish-{i}") for i in range(3)]
    client = d.client()
    for w in ids:
        client.start("checkout", order(w), workflow_id=w)

    closed = d.wait_closed(ids, timeout_s=120)

    assert marker.read_text().split() == ["worker_publish_lost"], "the fault fired once"
    assert all(isinstance(e.body, WorkflowCompleted) for e in closed.values()), closed
    assert [r["kind"] for r in d.ledger(ids) if r["kind"] == "charge"] == ["charge"] * 3
    for queue in QUEUES:
        assert_eventually(
            lambda q=queue: _lag(d, q) == 0,
            timeout=30,
            message=f"the worker committed every offset of tasks.{queue}",
        )


def test_undecodable_task_is_dead_lettered_and_the_partition_moves_on(
    deployment: Deployment,
) -> None:
    d = deployment
    d.orchestrator()
    d.worker()
    w = d.wid("after-poison-task")
    poison = command_producer(d.config)
    poison.produce(d.config.topics.tasks("payments"), b"\x00not a task\xff", w.encode())
    assert poison.flush(10) == 0
    d.client().start("checkout", order(w), workflow_id=w)

    closed = d.wait_closed([w], timeout_s=120)

    assert isinstance(closed[w].body, WorkflowCompleted)
    letters = assert_eventually(
        lambda: [o for _, o in _dead_letters(d) if "activity task" in o.get(H_REASON, "")],
        timeout=30,
        message="the poison task reached the dlq",
    )
    assert letters[0][H_TOPIC] == d.config.topics.tasks("payments")
    assert letters[0][H_STAGE] == "worker"
    assert_eventually(
        lambda: _lag(d, "payments") == 0,
        timeout=30,
        message="the payments partition was committed past the poison record",
    )
