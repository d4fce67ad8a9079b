"""kill -9 the orchestrator that owns the parents between their children's start and their
completion: the survivor takes the parents' partitions over, rebuilds them from the log, and
every parent records each child's result exactly once."""

from __future__ import annotations

from collections import Counter

import pytest

from sagaflow.client import Recorded, wait_closed
from sagaflow.codec import loads_payload
from sagaflow.core.messages import ChildWorkflowCompleted, ChildWorkflowStarted, WorkflowCompleted
from tests.children_support import id_on, two_orchestrators
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(420)]

N = 6
BIG = 500_000
"""An amount that waits for the "approve" signal: the children stay running until told."""


def test_kill9_parents_orchestrator_between_child_start_and_completion(
    deployment: Deployment,
) -> None:
    d = deployment
    a, owned_a, b, owned_b = two_orchestrators(d)
    d.worker(SAGAFLOW_WORKER_CONCURRENCY="8")
    client = d.client()
    parents = [id_on(d, f"parent-{i}", owned_a) for i in range(N)]
    # One child of each parent lives with the survivor, one with the parent (and dies too).
    far = {p: id_on(d, f"far-{i}", owned_b) for i, p in enumerate(parents)}
    near = {p: id_on(d, f"near-{i}", owned_a) for i, p in enumerate(parents)}
    children = [*far.values(), *near.values()]
    for p in parents:
        orders = [order(c, amount_cents=BIG, approval_timeout_s=900) for c in (far[p], near[p])]
        client.start("checkout_batch", {"orders": orders}, workflow_id=p)
    assert_eventually(
        lambda: len(d.ledger(children)) == len(children),
        timeout=120,
        message="every child started, charged and waiting for approval",
    )

    a.kill()
    assert not a.alive()
    for c in children:
        client.signal(c, "approve", {"approved": True, "by": "test"})

    recorded: list[Recorded] = []
    closed = wait_closed(d.config, parents + children, 300, on_event=recorded.append)

    assert b.alive()
    for p in parents:
        done = closed[p].body
        assert isinstance(done, WorkflowCompleted), (p, done)
        outcome = loads_payload(done.result)
        assert {c: outcome[c]["status"] for c in (far[p], near[p])} == {
            far[p]: "completed",
            near[p]: "completed",
        }
    in_parents = [r.event for r in recorded if r.event.workflow_id in set(parents)]
    started = Counter(
        e.body.child_workflow_id for e in in_parents if isinstance(e.body, ChildWorkflowStarted)
    )
    reported = Counter(
        e.body.child_workflow_id for e in in_parents if isinstance(e.body, ChildWorkflowCompleted)
    )
    assert started == Counter(children)
    assert reported == Counter(children), "each child's result recorded exactly once"
    assert sorted(r["kind"] for r in d.ledger(children)) == ["charge"] * len(children)
