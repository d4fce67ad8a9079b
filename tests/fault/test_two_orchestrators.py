"""Two orchestrators share the partitions; one is killed and the other finishes its sagas."""

from __future__ import annotations

import pytest

from sagaflow.core.messages import WorkflowCompleted
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]


def test_survivor_finishes_the_dead_ones_sagas(deployment: Deployment) -> None:
    d = deployment
    a = d.orchestrator("orch-a", instance="a")
    b = d.orchestrator("orch-b", instance="b")
    assert_eventually(
        lambda: sum(1 for ps in d.assignments().values() if ps) == 2,
        timeout=60,
        message="both orchestrators own partitions",
    )
    d.worker()
    client = d.client()
    ids = [d.wid(f"pair-{i}") for i in range(30)]
    # They wait for approval, so they are still open when one orchestrator dies.
    for w in ids:
        client.start("checkout", order(w, amount_cents=500_000), workflow_id=w)
    assert_eventually(
        lambda: len(d.ledger(ids)) == len(ids),
        timeout=90,
        message="every order charged and waiting for approval",
    )
    a.kill()
    for w in ids:
        client.signal(w, "approve", {"approved": True, "by": "test"})

    closed = d.wait_closed(ids, timeout_s=180)

    assert all(isinstance(e.body, WorkflowCompleted) for e in closed.values())
    assert b.alive()
    assert sorted(r["kind"] for r in d.ledger(ids)) == ["charge"] * len(ids)
