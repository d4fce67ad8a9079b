"""The same activity task delivered twice, and twice at the same time: one effect.

Tasks are delivered at least once; the idempotency row keyed by the logical step
(workflow id + activity seq) makes the effect happen once, and a repeated delivery republishes
the stored result instead of running the activity again."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from sagaflow import codec
from sagaflow.core.messages import ActivityTask, CompleteActivity, idempotency_key
from sagaflow.kafka.clients import command_producer
from tests.sagas import Deployment
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _task(workflow_id: str, attempt: int = 1) -> ActivityTask:
    order = {"order_id": workflow_id, "amount_cents": 1_234, "card": "tok_visa"}
    return ActivityTask(
        workflow_id=workflow_id,
        run_id="r1",
        workflow_type="checkout",
        activity_seq=2,
        attempt=attempt,
        activity_name="charge_payment",
        task_queue="payments",
        input=codec.dumps_payload(order),
        idempotency_key=idempotency_key(workflow_id, 2),
        scheduled_at_ms=0,
        start_to_close_ms=30_000,
    )


def _deliver(d: Deployment, *tasks: ActivityTask) -> None:
    producer = command_producer(d.config)
    for task in tasks:
        producer.produce(
            d.config.topics.tasks("payments"), codec.encode_task(task), task.workflow_id.encode()
        )
    assert producer.flush(10) == 0


def _completions(d: Deployment, workflow_id: str) -> list[CompleteActivity]:
    c = Consumer(
        {**d.config.kafka_common(), "group.id": "dup-reader", "enable.partition.eof": True}
    )
    md = c.list_topics(d.config.topics.commands, timeout=10)
    parts = list(md.topics[d.config.topics.commands].partitions)
    c.assign([TopicPartition(d.config.topics.commands, p, 0) for p in parts])
    out: list[CompleteActivity] = []
    eof: set[int] = set()
    try:
        while len(eof) < len(parts):
            msg = c.poll(5)
            if msg is None:
                break
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                continue
            cmd = codec.decode_command(msg.value())
            if isinstance(cmd, CompleteActivity) and cmd.workflow_id == workflow_id:
                out.append(cmd)
    finally:
        c.close()
    return out


def test_task_delivered_twice_charges_once(deployment: Deployment) -> None:
    d = deployment
    d.worker()
    wid = d.wid("dup-sequential")
    _deliver(d, _task(wid), _task(wid))

    done = assert_eventually(
        lambda: len(_completions(d, wid)) == 2 and _completions(d, wid),
        timeout=30,
        message="both deliveries answered",
    )

    assert [r["kind"] for r in d.ledger([wid])] == ["charge"]
    assert done[0].result == done[1].result, "the second answer is the stored result"


def test_task_delivered_twice_concurrently_charges_once(deployment: Deployment) -> None:
    d = deployment
    # Two workers in different consumer groups both receive every task: a true concurrent
    # double delivery, raced on the idempotency row.
    d.worker("worker-a", SAGAFLOW_WORKER_GROUP_PREFIX=d.env["SAGAFLOW_WORKER_GROUP_PREFIX"] + "a-")
    d.worker("worker-b", SAGAFLOW_WORKER_GROUP_PREFIX=d.env["SAGAFLOW_WORKER_GROUP_PREFIX"] + "b-")
    wids = [d.wid(f"dup-concurrent-{i}") for i in range(10)]
    _deliver(d, *[_task(w) for w in wids])

    assert_eventually(
        lambda: all(len(_completions(d, w)) == 2 for w in wids),
        timeout=60,
        message="both workers answered every task",
    )

    ledger = d.ledger(wids)
    assert sorted(r["order_id"] for r in ledger) == sorted(wids)
    assert {r["kind"] for r in ledger} == {"charge"}
    for w in wids:
        first, second = _completions(d, w)
        assert first.result == second.result
