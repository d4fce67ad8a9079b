"""SIGTERM makes the orchestrator finish its transaction, leave its group and exit 0 within a
pod's grace period; no command is lost across the restart."""

from __future__ import annotations

import time

import pytest

from sagaflow.core.messages import WorkflowCompleted
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(240)]

GRACE_S = 30


def test_sigterm_clean_exit_and_no_lost_command(deployment: Deployment) -> None:
    d = deployment
    orch = d.orchestrator("orch-1", instance="x")
    d.worker()
    client = d.client()
    ids = [d.wid(f"term-{i}") for i in range(60)]
    for w in ids[:30]:
        client.start("checkout", order(w), workflow_id=w)
    assert_eventually(
        lambda: len(d.ledger(ids)) >= 5, timeout=60, message="work under way before SIGTERM"
    )
    started = time.monotonic()
    code = orch.terminate(timeout_s=GRACE_S)
    took = time.monotonic() - started
    assert code == 0, orch.tail()
    assert took < GRACE_S
    assert "stopped" in orch.tail(20)
    # Commands sent while no orchestrator runs wait in Kafka.
    for w in ids[30:]:
        client.start("checkout", order(w), workflow_id=w)
    d.orchestrator("orch-2", instance="x")

    closed = d.wait_closed(ids, timeout_s=180)

    assert all(isinstance(e.body, WorkflowCompleted) for e in closed.values())
    assert sorted(r["kind"] for r in d.ledger(ids)) == ["charge"] * len(ids)
