"""The read model projector on real Kafka and Postgres: events produced to a real topic become
rows; replaying them changes nothing; rejections are kept; a poison record is dead-lettered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from sagaflow.config import Config
from sagaflow.core.messages import (
    ActivityAttemptFailed,
    ActivityCompleted,
    ActivityScheduled,
    CommandRejected,
    RetryPolicy,
    SignalReceived,
    TimerFired,
    TimerStarted,
    WorkflowCompleted,
    WorkflowParked,
    WorkflowStarted,
)
from sagaflow.kafka.clients import reader
from sagaflow.kafka.dlq import origin
from tests.readmodel_support import (
    EventWriter,
    environment,
    query,
    running_projector,
    wait_caught_up,
)
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def config(kafka_bootstrap: str, database_url: str) -> Iterator[Config]:
    with environment(kafka_bootstrap, database_url, "projector") as c:
        yield c


def scheduled(seq: int, name: str) -> ActivityScheduled:
    return ActivityScheduled(seq, name, "payments", b'{"x":1}', RetryPolicy(), 0, 0)


def write_two_workflows(w: EventWriter) -> None:
    w.event("wf-a", WorkflowStarted("checkout", 2, b'{"order_id":"a"}', 7))
    w.event("wf-a", scheduled(1, "reserve_inventory"))
    w.event("wf-a", ActivityCompleted(1, 1, b'{"reservation":"r1"}'))
    w.event("wf-a", TimerStarted(4, 1_700_000_060_000))
    w.event("wf-a", SignalReceived("approve", b'{"by":"ann"}', "c-1"))
    w.event("wf-a", TimerFired(4))
    w.event("wf-a", WorkflowCompleted(b'{"ok":true}'))
    w.event("wf-b", WorkflowStarted("checkout", 1, b'{"order_id":"b"}', 9))
    w.event("wf-b", scheduled(1, "charge_card"))
    w.event("wf-b", ActivityAttemptFailed(1, 1, "Timeout", "slow", True, 1_700_000_099_000))
    w.event("wf-b", TimerStarted(2, 1_700_000_090_000))
    w.event("wf-b", WorkflowParked("workflow_error", "KeyError: 'sku'"))
    w.event(
        "wf-x",
        CommandRejected("start:wf-x", "StartWorkflow", "unknown_workflow_type", "no type 'nope'"),
        seq=0,
    )
    w.flush()


def snapshot(config: Config) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "workflows": query(config, "SELECT * FROM sagaflow_workflows ORDER BY workflow_id"),
        "history": query(
            config, "SELECT * FROM sagaflow_workflow_history ORDER BY workflow_id, seq"
        ),
        "rejections": query(
            config,
            "SELECT command_id, workflow_id, command_type, reason,"
            " message, recorded_at FROM sagaflow_rejections ORDER BY id",
        ),
    }


def test_events_become_workflow_rows_history_and_rejections(config: Config) -> None:
    w = EventWriter(config)
    with running_projector(config) as projector:
        write_two_workflows(w)
        wait_caught_up(projector, len(w.sent))

    rows = {
        r[0]: r
        for r in query(
            config,
            "SELECT workflow_id, type, version, status, input, result, current_step,"
            " pending_timers, received_signals, parked, last_seq FROM sagaflow_workflows",
        )
    }
    assert set(rows) == {"wf-a", "wf-b"}  # a rejection makes no workflow row
    _, wtype, version, status, input_, result, step, timers, signals, parked, last = rows["wf-a"]
    assert (wtype, version, status, last) == ("checkout", 2, "completed", 7)
    assert input_ == {"order_id": "a"} and result == {"ok": True}
    assert step["name"] == "reserve_inventory" and step["state"] == "completed"
    assert timers == [] and parked is None
    assert [s["name"] for s in signals] == ["approve"]

    _, _, _, status, _, _, step, timers, _, parked, last = rows["wf-b"]
    assert (status, last) == ("parked", 5)
    assert step["name"] == "charge_card" and step["state"] == "backing_off"
    assert step["last_error"]["type"] == "Timeout"
    assert timers == [{"timer_seq": 2, "fire_at_ms": 1_700_000_090_000}]
    assert parked["kind"] == "workflow_error"

    history = query(
        config,
        "SELECT workflow_id, seq, type, body FROM sagaflow_workflow_history"
        " ORDER BY workflow_id, seq",
    )
    assert [(h[0], h[1]) for h in history] == [("wf-a", s) for s in range(1, 8)] + [
        ("wf-b", s) for s in range(1, 6)
    ]
    assert history[0][2] == "WorkflowStarted" and history[0][3]["input"] == {"order_id": "a"}

    rejections = query(
        config,
        "SELECT command_id, workflow_id, command_type, reason, message FROM sagaflow_rejections",
    )
    assert rejections == [
        ("start:wf-x", "wf-x", "StartWorkflow", "unknown_workflow_type", "no type 'nope'")
    ]


def test_replaying_the_same_events_changes_nothing(config: Config) -> None:
    w = EventWriter(config)
    with running_projector(config) as projector:
        write_two_workflows(w)
        wait_caught_up(projector, len(w.sent))
        before = snapshot(config)
        # The same events delivered again (a producer retry, a re-driven batch) ...
        w.resend(w.sent)
        w.flush()
        wait_caught_up(projector, 2 * len(w.sent))
        assert snapshot(config) == before
    # ... and the whole topic projected again from its start by a fresh consumer group.
    with running_projector(config, group=f"{config.topics.prefix}projector-2") as again:
        wait_caught_up(again, 2 * len(w.sent))
    assert snapshot(config) == before


def test_an_older_event_arriving_late_does_not_move_a_row_back(config: Config) -> None:
    w = EventWriter(config)
    with running_projector(config) as projector:
        started = w.event("wf-c", WorkflowStarted("checkout", 1, b"{}", 1))
        w.event("wf-c", WorkflowCompleted(b'"done"'))
        w.flush()
        wait_caught_up(projector, 2)
        w.resend([started])
        w.flush()
        wait_caught_up(projector, 3)
    assert query(config, "SELECT status, last_seq FROM sagaflow_workflows") == [("completed", 2)]


def test_an_undecodable_event_is_dead_lettered_and_the_projector_moves_on(config: Config) -> None:
    w = EventWriter(config)
    with running_projector(config) as projector:
        w.send_raw("wf-poison", b"\x00not avro at all")
        w.event("wf-d", WorkflowStarted("checkout", 1, b'{"n":1}', 1))
        w.flush()
        wait_caught_up(projector, 2)
        assert projector.dead_lettered == 1
    assert query(config, "SELECT workflow_id, status FROM sagaflow_workflows") == [
        ("wf-d", "running")
    ]

    consumer = reader(config)
    try:
        consumer.assign([TopicPartition(config.topics.dlq, 0, 0)])

        def dead_letter() -> Any:
            msg = consumer.poll(0.5)
            return msg if msg is not None and msg.error() is None else None

        msg = assert_eventually(dead_letter, timeout=30, message="a record on the dlq")
    finally:
        consumer.close()
    assert msg.value() == b"\x00not avro at all" and msg.key() == b"wf-poison"
    where = origin(msg.headers())
    assert where["sagaflow.dlq.source.topic"] == config.topics.events
    assert where["sagaflow.dlq.stage"] == "projector.decode"
    assert "cannot decode" in where["sagaflow.dlq.reason"]
