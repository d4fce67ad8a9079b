"""kill -9 the orchestrator with state-machine checkouts in flight: a restarted one (which
learns the definition from the compacted topic again) finishes every execution, and the
provider's ledger shows one charge per order and one refund per compensated order."""

from __future__ import annotations

import pytest

from sagaflow.asl import store
from sagaflow.asl.examples import checkout_definition
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

N = 100
APP = "sagaflow.asl.examples:registry"
NAME = "checkout-asl"


def test_kill9_orchestrator_mid_flight_state_machine(deployment: Deployment) -> None:
    d = deployment
    deployed, created = store.deploy(d.config, NAME, checkout_definition())
    assert (deployed.version, created) == (1, True)
    d.env["SAGAFLOW_APP"] = APP
    first = d.orchestrator("orch-a", instance="a")
    d.worker(SAGAFLOW_WORKER_CONCURRENCY="16")
    client = d.client()
    ids = [d.wid(f"asl-kill9-{i}") for i in range(N)]
    # every tenth order waits for an approval that never comes: charged, then refunded; its
    # timer is long enough to be pending when the orchestrator dies, even on a loaded machine
    compensated = {w for i, w in enumerate(ids) if i % 10 == 0}
    for w in ids:
        extra = {"amount_cents": 500_000, "approval_timeout_s": 15} if w in compensated else {}
        client.start(NAME, order(w, **extra), workflow_id=w)

    assert_eventually(
        lambda: len(d.ledger(ids)) >= 10,
        timeout=60,
        message="executions under way before the crash",
    )
    first.kill()
    assert not first.alive()
    # The crash must hit work in flight: compensated orders still wait on their approval timer.
    assert len([r for r in d.ledger(ids) if r["kind"] == "refund"]) < len(compensated)
    d.orchestrator("orch-a2", instance="a")

    closed = d.wait_closed(ids, timeout_s=240)

    d.assert_outcomes(ids, compensated, closed)
