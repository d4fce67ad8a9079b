"""Heartbeat timeouts and cancellation of running activities on real Kafka and Postgres: the
orchestrator and a worker as processes, the app in tests/integration/activity_app.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sagaflow import codec
from sagaflow.client import Recorded, follow, wait_closed
from sagaflow.core import messages as m
from sagaflow.kafka.admin import create_topics
from tests.integration.activity_app import QUEUE
from tests.sagas import Deployment, prepare

pytestmark = pytest.mark.integration

APP = "tests.integration.activity_app:registry"


@pytest.fixture
def control(
    request: pytest.FixtureRequest, kafka_bootstrap: str, database_url: str
) -> Iterator[Deployment]:
    d = prepare(kafka_bootstrap, database_url, request.node.name, SAGAFLOW_APP=APP)
    create_topics(d.config, [QUEUE])
    try:
        d.orchestrator()
        d.worker()
        yield d
    finally:
        d.stop()


def closing(d: Deployment, ids: list[str], seen: list[m.Event]) -> dict[str, m.Event]:
    def keep(rec: Recorded) -> None:
        seen.append(rec.event)

    try:
        return wait_closed(d.config, ids, 90, on_event=keep)
    except TimeoutError as exc:
        logs = "\n".join(f"--- {s.name}\n{s.tail()}" for s in d.services)
        raise AssertionError(f"{exc}\n{logs}") from exc


def result(event: m.Event) -> Any:
    assert isinstance(event.body, m.WorkflowCompleted), event
    return codec.loads_payload(event.body.result)


def wait_for_heartbeats(d: Deployment, ids: list[str], timeout_s: float = 60) -> None:
    """Until each workflow's activity has heartbeated once: it is running on the worker."""
    pending = set(ids)
    deadline = time.monotonic() + timeout_s
    for rec in follow(d.config, stop=lambda: time.monotonic() > deadline):
        if isinstance(rec.event.body, m.ActivityHeartbeatRecorded):
            pending.discard(rec.event.workflow_id)
            if not pending:
                return
    logs = "\n".join(f"--- {s.name}\n{s.tail()}" for s in d.services)
    raise AssertionError(f"no heartbeat from {sorted(pending)} within {timeout_s}s\n{logs}")


def test_an_activity_that_stops_heartbeating_times_out_and_the_retry_resumes(
    control: Deployment,
) -> None:
    d = control
    wid = d.wid("stall")
    d.client().start("resume_after_stall", None, workflow_id=wid)
    seen: list[m.Event] = []
    closed = closing(d, [wid], seen)
    assert result(closed[wid]) == {"attempt": 2, "resumed_from": {"done": 5}}
    bodies = [e.body for e in seen if e.workflow_id == wid]
    heartbeats = [b for b in bodies if isinstance(b, m.ActivityHeartbeatRecorded)]
    assert [(b.attempt, codec.loads_payload(b.details)) for b in heartbeats] == [(1, {"done": 5})]
    (failed,) = [b for b in bodies if isinstance(b, m.ActivityAttemptFailed)]
    assert (failed.attempt, failed.error_type) == (1, "HeartbeatTimeout")


def test_running_activities_cancelled_from_the_workflow_stop_and_the_workflow_goes_on(
    control: Deployment,
) -> None:
    d = control
    cases = {
        d.wid("sync-wait"): {"activity": "poll_until_cancelled", "wait": True},
        d.wid("async-wait"): {"activity": "await_forever", "wait": True},
        d.wid("async-abandon"): {"activity": "await_forever", "wait": False},
    }
    client = d.client()
    for wid, arg in cases.items():
        client.start("cancel_running", arg, workflow_id=wid)
    wait_for_heartbeats(d, list(cases))
    started = time.monotonic()
    for wid in cases:
        client.signal(wid, "stop")
    seen: list[m.Event] = []
    closed = closing(d, list(cases), seen)
    assert time.monotonic() - started < 60, "the activities would have run on for minutes"

    sync_wait, async_wait, abandon = (result(closed[wid]) for wid in cases)
    # The sync activity saw its cancel signal and stopped itself, saying where.
    assert sync_wait["cancelled"] == "StoppedOnCancel"
    assert sync_wait["message"].startswith("stopped at step ")
    # The async one was cancelled at its await by the worker.
    assert async_wait == {
        "cancelled": "ActivityCancelled",
        "message": "cancelled by its workflow while it ran",
        "then": {"after": "await_forever"},
    }
    assert abandon["cancelled"] == "ActivityCancelled"
    assert abandon["then"] == {"after": "await_forever"}
    for wid, arg in cases.items():
        bodies = [e.body for e in seen if e.workflow_id == wid]
        assert any(isinstance(b, m.ActivityCancelRequested) for b in bodies), wid
        finals = [b for b in bodies if isinstance(b, m.ActivityFailed)]
        if arg["wait"]:
            assert [f.reason for f in finals] == ["cancelled"], wid
        assert not any(isinstance(b, m.ActivityRetried) for b in bodies), (
            f"{wid}: a cancelled activity is never retried"
        )
