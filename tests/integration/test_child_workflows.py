"""Child workflows on real Kafka and Postgres: a parent on one orchestrator with children on
partitions the other one owns, a failing child, and parent cancellation under each parent
close policy (the children are `checkout` workflows of the example `checkout_batch`)."""

from __future__ import annotations

from collections import Counter

import pytest

from sagaflow.client import Recorded, wait_closed
from sagaflow.codec import loads_payload
from sagaflow.core.messages import (
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    Event,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowStarted,
    WorkflowTerminated,
)
from tests.children_support import id_on, row, two_orchestrators
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BIG = 500_000
"""An amount that waits for the "approve" signal, so a child stays running until told."""


def test_children_on_the_other_orchestrator_report_to_their_parent(deployment: Deployment) -> None:
    d = deployment
    _, owned_a, _, owned_b = two_orchestrators(d)
    d.worker()
    parent = id_on(d, "batch", owned_a)
    ok, refused = id_on(d, "ok", owned_b), id_on(d, "refused", owned_b)
    client = d.client()
    orders = [order(ok), order(refused, amount_cents=BIG, approval_timeout_s=600)]
    client.start("checkout_batch", {"orders": orders}, workflow_id=parent)

    # The read model shows the parent's pending child and each child's parent.
    assert_eventually(
        lambda: (
            [c["workflow_id"] for c in (row(d, parent) or {}).get("pending_children", [])]
            == [refused]
        ),
        timeout=90,
        message=f"{parent} waits on {refused} only ({ok} completed)",
    )
    assert (row(d, refused) or {})["parent"]["workflow_id"] == parent
    client.signal(refused, "approve", {"approved": False, "by": "test"})

    seen: list[Event] = []

    def keep(rec: Recorded) -> None:
        seen.append(rec.event)

    closed = wait_closed(d.config, [parent, ok, refused], 120, on_event=keep)

    done = closed[parent].body
    assert isinstance(done, WorkflowCompleted)
    outcome = loads_payload(done.result)
    assert outcome[ok]["status"] == "completed"
    assert outcome[ok]["result"]["order_id"] == ok
    assert outcome[refused]["status"] == "failed"
    assert "OrderRefused" in outcome[refused]["error"]
    in_parent = Counter(type(e.body) for e in seen if e.workflow_id == parent)
    assert in_parent[ChildWorkflowCompleted] == 1 and in_parent[ChildWorkflowFailed] == 1
    for child in (ok, refused):
        started = next(e.body for e in seen if e.workflow_id == child)
        assert isinstance(started, WorkflowStarted) and started.parent_workflow_id == parent
    assert sorted(r["kind"] for r in d.ledger([ok])) == ["charge"]
    assert sorted(r["kind"] for r in d.ledger([refused])) == ["charge", "refund"]
    assert_eventually(
        lambda: (
            (row(d, parent) or {}).get("status") == "completed"
            and not (row(d, parent) or {}).get("pending_children")
        ),
        timeout=30,
        message="the parent's row completed with no pending child",
    )


@pytest.mark.parametrize("policy", ["terminate", "request_cancel", "abandon"])
def test_cancelling_a_parent_follows_its_parent_close_policy(
    deployment: Deployment, policy: str
) -> None:
    d = deployment
    d.orchestrator()
    d.worker()
    client = d.client()
    parent, child = d.wid("parent"), d.wid("child")
    orders = [order(child, amount_cents=BIG, approval_timeout_s=600)]
    client.start(
        "checkout_batch", {"orders": orders, "parent_close_policy": policy}, workflow_id=parent
    )
    assert_eventually(
        lambda: len(d.ledger([child])) == 1, timeout=90, message="the child charged and waits"
    )

    client.cancel(parent, "batch no longer wanted")

    closed = d.wait_closed([parent], timeout_s=60)
    assert isinstance(closed[parent].body, WorkflowCancelled)
    if policy == "abandon":
        # The child runs on: approve it and it completes; its report reaches nobody.
        client.signal(child, "approve", {"approved": True, "by": "test"})
        ending = d.wait_closed([child], timeout_s=60)[child].body
        assert isinstance(ending, WorkflowCompleted)
        assert sorted(r["kind"] for r in d.ledger([child])) == ["charge"]
    elif policy == "request_cancel":
        # The child's code is told: it compensates (refunds) and closes as cancelled.
        ending = d.wait_closed([child], timeout_s=60)[child].body
        assert isinstance(ending, WorkflowCancelled)
        assert f"parent {parent!r} closed (cancelled)" in ending.reason
        assert sorted(r["kind"] for r in d.ledger([child])) == ["charge", "refund"]
    else:
        # Terminated: stopped at once, nothing compensated.
        ending = d.wait_closed([child], timeout_s=60)[child].body
        assert isinstance(ending, WorkflowTerminated)
        assert f"parent {parent!r} closed (cancelled)" in ending.reason
        assert ending.by == f"parent {parent}"
        assert sorted(r["kind"] for r in d.ledger([child])) == ["charge"]
