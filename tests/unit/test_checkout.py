"""The reference checkout saga on the test kit (in-memory shop, virtual time)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.examples.checkout import registry
from sagaflow.examples.shop import InMemoryShop
from sagaflow.testing import WorkflowEnvironment

pytestmark = pytest.mark.unit

ORDER: dict[str, Any] = {
    "order_id": "order-1",
    "sku": "sku-1",
    "quantity": 2,
    "amount_cents": 4_999,
    "card": "tok_visa",
    "address": "1 Main St",
    "email": "buyer@example.com",
}
BIG = dict(ORDER, amount_cents=250_000, approval_timeout_s=600)


@pytest.fixture
def shop() -> InMemoryShop:
    return InMemoryShop()


@pytest.fixture
def env(shop: InMemoryShop) -> Iterator[WorkflowEnvironment]:
    with WorkflowEnvironment(registry, resources={"shop": shop}) as environment:
        yield environment


def test_saga_completes_and_emails_with_its_idempotency_key(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start("checkout", ORDER, workflow_id="wf-1")
    env.run()
    assert env.status("wf-1") == "completed"
    result = env.result("wf-1")
    assert result["status"] == "completed"
    assert result["charge_id"].startswith("ch_")
    assert shop.operations() == [
        "reserve_inventory",
        "charge_payment",
        "create_shipment",
        "send_receipt_email",
    ]
    email_task = next(t for t in env.executed if t.activity_name == "send_receipt_email")
    assert shop.emails == [result["receipt"]]
    assert result["receipt"]["idempotency_key"] == email_task.idempotency_key
    assert email_task.idempotency_key == m.idempotency_key("wf-1", email_task.activity_seq)
    assert {t.task_queue for t in env.executed} == {"inventory", "payments", "shipping", "email"}


def test_declined_card_releases_inventory_only(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start("checkout", dict(ORDER, card="tok_declined"), workflow_id="wf-2")
    env.run()
    assert env.status("wf-2") == "failed"
    failure = env.failure("wf-2")
    assert failure.error_type == "ActivityError"
    assert "PaymentDeclined" in failure.message
    assert shop.operations() == ["reserve_inventory", "release_inventory"]
    assert env.scheduled("wf-2", compensation=True) == ["release_inventory"]


def test_large_amount_waits_for_approval_then_ships(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start("checkout", BIG, workflow_id="wf-3")
    env.run(advance_time=False)
    assert env.status("wf-3") == "running"
    assert shop.operations() == ["reserve_inventory", "charge_payment"]
    env.signal("wf-3", "approve", {"approved": True})
    env.run()
    assert env.status("wf-3") == "completed"
    assert env.result("wf-3")["approval"] == {"approved": True}
    assert shop.operations()[-2:] == ["create_shipment", "send_receipt_email"]
    cancelled = [e for e in env.history("wf-3") if isinstance(e.body, m.TimerCancelled)]
    assert len(cancelled) == 1  # the approval timeout timer is not left behind


def test_approval_timeout_refunds_then_releases(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start("checkout", BIG, workflow_id="wf-4")
    env.run()
    assert env.status("wf-4") == "failed"
    assert env.failure("wf-4").error_type == "SignalTimeoutError"
    assert shop.operations() == [
        "reserve_inventory",
        "charge_payment",
        "refund_payment",
        "release_inventory",
    ]
    fired = next(e for e in env.history("wf-4") if isinstance(e.body, m.TimerFired))
    started = env.history("wf-4")[0]
    assert fired.recorded_at_ms - started.recorded_at_ms == 600_000


def test_refused_approval_compensates(env: WorkflowEnvironment, shop: InMemoryShop) -> None:
    env.start("checkout", BIG, workflow_id="wf-r")
    env.run(advance_time=False)
    env.signal("wf-r", "approve", {"approved": False})
    env.run()
    assert env.failure("wf-r").error_type == "OrderRefused"
    assert shop.operations()[-2:] == ["refund_payment", "release_inventory"]


def test_signal_sent_before_the_wait_is_buffered(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start("checkout", BIG, workflow_id="wf-b")
    env.signal("wf-b", "approve", {"approved": True})
    env.run()
    assert env.status("wf-b") == "completed"


def test_cancellation_mid_saga_compensates_in_reverse(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start("checkout", BIG, workflow_id="wf-5")
    env.run(advance_time=False)
    env.cancel("wf-5", "customer changed their mind")
    env.cancel("wf-5", "again")  # a second request adds nothing
    env.run()
    assert env.status("wf-5") == "cancelled"
    assert shop.operations() == [
        "reserve_inventory",
        "charge_payment",
        "refund_payment",
        "release_inventory",
    ]
    cancels = [e for e in env.history("wf-5") if isinstance(e.body, m.CancelRequested)]
    assert len(cancels) == 1


def test_cancellation_while_an_activity_runs(env: WorkflowEnvironment, shop: InMemoryShop) -> None:
    env.start("checkout", ORDER, workflow_id="wf-6")
    env.run_task(env.tasks.popleft())  # reserve done; charge queued
    env.cancel("wf-6")
    env.run()
    assert env.status("wf-6") == "cancelled"
    # The charge task was already out; its completion is recorded but not compensated.
    assert shop.operations()[0] == "reserve_inventory"
    assert env.scheduled("wf-6", compensation=True) == ["release_inventory"]


def test_transient_failures_are_retried_with_backoff(env: WorkflowEnvironment) -> None:
    shop = InMemoryShop(fail_times={"charge_payment": 2})
    env.resources = {"shop": shop}
    env.start("checkout", ORDER, workflow_id="wf-7")
    env.run()
    assert env.status("wf-7") == "completed"
    charges = [t for t in env.executed if t.activity_name == "charge_payment"]
    assert [t.attempt for t in charges] == [1, 2, 3]
    assert len({t.idempotency_key for t in charges}) == 1
    failed = [e for e in env.history("wf-7") if isinstance(e.body, m.ActivityAttemptFailed)]
    delays = [e.body.retry_at_ms - e.recorded_at_ms for e in failed]
    assert delays == [500, 1000]
    assert shop.operations().count("charge_payment") == 1


def test_out_of_stock_fails_without_compensation(env: WorkflowEnvironment) -> None:
    env.resources = {"shop": InMemoryShop(stock={"sku-1": 1})}
    env.start("checkout", ORDER, workflow_id="wf-8")
    env.run()
    assert env.status("wf-8") == "failed"
    assert env.scheduled("wf-8", compensation=True) == []
