"""The four demo sagas, end to end on real Kafka and Postgres with both services running."""

from __future__ import annotations

import pytest

from sagaflow.core.messages import WorkflowCompleted, WorkflowFailed
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _kinds(d: Deployment, oid: str) -> list[str]:
    return sorted(r["kind"] for r in d.ledger([oid]))


def test_four_checkout_sagas(deployment: Deployment) -> None:
    d = deployment
    d.orchestrator()
    d.worker()
    client = d.client()
    ok, declined, approved, timed_out = (
        d.wid(n) for n in ("ok", "declined", "approved", "timeout")
    )
    client.start("checkout", order(ok), workflow_id=ok)
    client.start("checkout", order(declined, card="tok_declined"), workflow_id=declined)
    client.start("checkout", order(approved, amount_cents=500_000), workflow_id=approved)
    client.start(
        "checkout",
        order(timed_out, amount_cents=500_000, approval_timeout_s=2),
        workflow_id=timed_out,
    )
    # A signal that arrives before the workflow waits is buffered, so it can go at once.
    client.signal(approved, "approve", {"approved": True, "by": "test"})

    closed = d.wait_closed([ok, declined, approved, timed_out], timeout_s=120)

    assert isinstance(closed[ok].body, WorkflowCompleted)
    assert isinstance(closed[approved].body, WorkflowCompleted)
    assert isinstance(closed[declined].body, WorkflowFailed)
    assert isinstance(closed[timed_out].body, WorkflowFailed)
    assert _kinds(d, ok) == ["charge"]
    assert _kinds(d, approved) == ["charge"]
    assert _kinds(d, declined) == []
    assert assert_eventually(
        lambda: _kinds(d, timed_out) == ["charge", "refund"],
        timeout=10,
        message="timed-out order refunded once",
    )
