"""kill -9 the orchestrator with 200 sagas in flight; a restarted one finishes every saga, and
the provider's ledger shows one charge per order and one refund per compensated order."""

from __future__ import annotations

import pytest

from sagaflow_orchestrator import checkpoints
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

N = 200


def test_kill9_orchestrator_mid_flight(deployment: Deployment) -> None:
    d = deployment
    first = d.orchestrator("orch-a", instance="a")
    d.worker(SAGAFLOW_WORKER_CONCURRENCY="16")
    client = d.client()
    ids = [d.wid(f"kill9-{i}") for i in range(N)]
    # every tenth order waits for an approval that never comes: charged, then refunded
    compensated = {w for i, w in enumerate(ids) if i % 10 == 0}
    for w in ids:
        extra = {"amount_cents": 500_000, "approval_timeout_s": 4} if w in compensated else {}
        client.start("checkout", order(w, **extra), workflow_id=w)

    assert_eventually(
        lambda: len(d.ledger(ids)) >= 20, timeout=60, message="sagas under way before the crash"
    )
    first.kill()
    assert not first.alive()
    # Same instance id, so the new transactional producer fences the dead one's transaction.
    d.orchestrator("orch-a2", instance="a")

    closed = d.wait_closed(ids, timeout_s=240)

    d.assert_outcomes(ids, compensated, closed)

    # With every workflow closed, the next checkpoint says a rebuild needs nothing before the
    # end of each partition: recovery is bounded by open work.
    def bounded() -> bool:
        cps = checkpoints.read_all(d.config)
        return len(cps) == 3 and all(c.low_water == c.end_offset > 0 for c in cps.values())

    assert_eventually(bounded, timeout=30, message="checkpoints at the end of every partition")
