"""The engine remembers closed workflows across restarts, and decides a command only on the
partition its workflow id maps to: real Kafka, real Postgres, the services as processes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from sagaflow import codec
from sagaflow.client import Recorded, follow, payload
from sagaflow.core.identity import start_command_id
from sagaflow.core.messages import (
    ActivityScheduled,
    CommandRejected,
    StartWorkflow,
    WorkflowCompleted,
    WorkflowStarted,
)
from sagaflow.examples.checkout import registry
from sagaflow.kafka.partition import partition_for
from sagaflow_orchestrator import checkpoints
from sagaflow_orchestrator.rebuild import RebuildError, rebuild_partition
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def records_of(
    d: Deployment, workflow_id: str, done: Callable[[list[Recorded]], bool], timeout_s: float = 60
) -> list[Recorded]:
    """The committed events of one workflow, read from the log until `done` says enough."""
    deadline = time.monotonic() + timeout_s
    found: list[Recorded] = []
    for rec in follow(d.config, stop=lambda: time.monotonic() > deadline):
        if rec.event.workflow_id == workflow_id:
            found.append(rec)
            if done(found):
                return found
        if time.monotonic() > deadline:
            break
    kinds = [type(r.event.body).__name__ for r in found]
    raise AssertionError(f"events of {workflow_id} never satisfied the test: {kinds}")


def rejections(found: list[Recorded]) -> list[CommandRejected]:
    return [r.event.body for r in found if isinstance(r.event.body, CommandRejected)]


def test_a_finished_workflow_is_not_run_again_after_a_restart(deployment: Deployment) -> None:
    d = deployment
    first = d.orchestrator("orch-a", instance="a")
    d.worker()
    client = d.client()
    wid = d.wid("once")
    client.start("checkout", order(wid), workflow_id=wid)
    closing = d.wait_closed([wid])[wid]
    assert isinstance(closing.body, WorkflowCompleted)
    before = records_of(d, wid, lambda f: isinstance(f[-1].event.body, WorkflowCompleted))
    p, closed_at = before[-1].partition, before[-1].offset
    scheduled = sum(isinstance(r.event.body, ActivityScheduled) for r in before)

    # A checkpoint past the closing event: a rebuild reads none of the workflow's events.
    def checkpoint_past_it() -> bool:
        cp = checkpoints.read_all(d.config).get(checkpoints.key(d.config.topics.events, p))
        return cp is not None and cp.low_water > closed_at

    assert_eventually(checkpoint_past_it, timeout=30, message="a checkpoint past the workflow")
    assert first.terminate() == 0
    d.orchestrator("orch-b", instance="a")

    client.start("checkout", order(wid), workflow_id=wid)  # the identical start, resent
    client.signal(wid, "approve", command_id="late-signal")
    client.start("checkout", order(wid, quantity=2), workflow_id=wid)  # another start, same id

    after = records_of(d, wid, lambda f: len(rejections(f)) >= 2)
    refused = rejections(after)
    assert [r.reason for r in refused] == ["workflow_closed", "duplicate_workflow_id"]
    assert refused[0].command_id == "late-signal"
    different = start_command_id(wid, "checkout", None, payload(order(wid, quantity=2)))
    assert refused[1].command_id == different
    history = [r for r in after if r.event.seq > 0]
    assert sum(isinstance(r.event.body, WorkflowStarted) for r in history) == 1
    assert sum(isinstance(r.event.body, ActivityScheduled) for r in history) == scheduled
    assert [r.event.seq for r in history] == list(range(1, len(history) + 1))
    assert sorted(r["kind"] for r in d.ledger([wid])) == ["charge"]


def test_commands_without_the_workflow_id_as_key_are_rerouted(deployment: Deployment) -> None:
    d = deployment
    d.orchestrator()
    d.worker()
    partitions = 3
    producer = Producer({"bootstrap.servers": d.config.kafka_bootstrap})
    sent: dict[str, int] = {}
    for name, key in (("no-key", None), ("wrong-key", b"not-the-workflow-id")):
        wid = d.wid(name)
        owner = partition_for(wid.encode(), partitions)
        wrong = (owner + 1) % partitions
        data = payload(order(wid))
        command = StartWorkflow(
            wid, "checkout", data, None, start_command_id(wid, "checkout", None, data)
        )
        producer.produce(d.config.topics.commands, codec.encode_command(command), key, wrong)
        sent[wid] = owner
    assert producer.flush(30) == 0

    closed = d.wait_closed(list(sent))

    for wid, owner in sent.items():
        assert isinstance(closed[wid].body, WorkflowCompleted), wid
        found = records_of(d, wid, lambda f: isinstance(f[-1].event.body, WorkflowCompleted))
        assert {r.partition for r in found} == {owner}, "decided on the partition it maps to"
        assert sum(isinstance(r.event.body, WorkflowStarted) for r in found) == 1
        assert not rejections(found)


def test_a_missing_closed_workflows_topic_is_named_with_the_fix(deployment: Deployment) -> None:
    d = deployment
    topic = d.config.topics.closed_workflows
    admin = AdminClient(dict(d.config.kafka_common()))
    admin.delete_topics([topic])[topic].result(timeout=30)
    assert_eventually(
        lambda: topic not in admin.list_topics(timeout=10).topics,
        timeout=30,
        message=f"{topic} gone from the broker's metadata",
    )

    with pytest.raises(RebuildError, match="sagaflow topics create"):
        rebuild_partition(d.config, registry, 0, low_water=0, timeout_s=10)
