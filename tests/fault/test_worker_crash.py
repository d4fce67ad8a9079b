"""kill -9 a worker after the payment provider charged and before the result was published:
the step is retried with the same idempotency key and the card is not charged again."""

from __future__ import annotations

import pytest

from sagaflow.core.messages import WorkflowCompleted
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(240)]


def test_kill9_worker_after_charge(deployment: Deployment) -> None:
    d = deployment
    d.orchestrator()
    doomed = d.worker("worker-doomed", SAGAFLOW_FAULT="after_charge")
    wid = d.wid("crash-after-charge")
    d.client().start("checkout", order(wid), workflow_id=wid)

    # The fault point kills the worker right after the charge committed at the provider.
    assert_eventually(
        lambda: not doomed.alive(),
        timeout=60,
        message="worker died at the after_charge fault point",
    )
    assert [r["kind"] for r in d.ledger([wid])] == ["charge"], "the fault fired after a charge"

    d.worker("worker-healthy")
    closed = d.wait_closed([wid], timeout_s=120)

    assert isinstance(closed[wid].body, WorkflowCompleted)
    assert [r["kind"] for r in d.ledger([wid])] == ["charge"]
