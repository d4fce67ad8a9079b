"""The checkout saga as a state machine, in-process on the test kit (in-memory shop): the same
outcomes and compensations as the code version (tests/unit/test_checkout.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sagaflow.asl import tokens
from sagaflow.asl.examples import checkout_definition, registry
from sagaflow.asl.interpreter import register
from sagaflow.core import messages as m
from sagaflow.core.replay import replay
from sagaflow.examples.shop import InMemoryShop
from sagaflow.testing import WorkflowEnvironment

pytestmark = pytest.mark.unit

NAME = "checkout-asl-unit"
register(registry, NAME, checkout_definition())
ORDER: dict[str, Any] = {
    "order_id": "o-1",
    "sku": "sku-1",
    "quantity": 2,
    "amount_cents": 4_999,
    "card": "tok_visa",
    "address": "1 Main St",
    "email": "b@example.com",
}
BIG = dict(ORDER, amount_cents=250_000, approval_timeout_s=600)


@pytest.fixture
def shop() -> InMemoryShop:
    return InMemoryShop()


@pytest.fixture
def env(shop: InMemoryShop) -> Iterator[WorkflowEnvironment]:
    with WorkflowEnvironment(registry, resources={"shop": shop}) as environment:
        yield environment


def _token(env: WorkflowEnvironment, wid: str) -> tokens.TaskToken:
    (scheduled,) = [e.body for e in env.history(wid) if isinstance(e.body, m.ActivityScheduled)
                    and e.body.activity_name == "request_approval"]  # fmt: skip
    return tokens.TaskToken.decode(json.loads(scheduled.input)["token"])


def _replays(env: WorkflowEnvironment, wid: str) -> None:
    outcome = replay(registry, env.history(wid))
    assert outcome.error is None and outcome.new_commands == []


def test_completes_and_emails_with_its_idempotency_key(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start(NAME, ORDER, workflow_id="w1")
    env.run()
    result = env.result("w1")
    assert result["status"] == "completed" and result["charge_id"].startswith("ch_")
    assert shop.operations() == ["reserve_inventory", "charge_payment", "create_shipment",
                                 "send_receipt_email"]  # fmt: skip
    email_task = next(t for t in env.executed if t.activity_name == "send_receipt_email")
    assert result["receipt"]["idempotency_key"] == email_task.idempotency_key
    assert email_task.idempotency_key == m.idempotency_key("w1", email_task.activity_seq)
    _replays(env, "w1")


def test_declined_card_releases_the_reservation(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start(NAME, dict(ORDER, card="tok_declined"), workflow_id="w2")
    env.run()
    assert env.failure("w2").error_type == "PaymentDeclined"
    assert shop.operations() == ["reserve_inventory", "release_inventory"]


def test_approved_by_task_token(env: WorkflowEnvironment, shop: InMemoryShop) -> None:
    env.start(NAME, BIG, workflow_id="w3")
    env.run(advance_time=False)
    assert env.status("w3") == "running"
    token = _token(env, "w3")
    env.signal(token.workflow_id, token.signal, tokens.success({"approved": True}))
    env.run()
    assert env.result("w3")["status"] == "completed"
    assert "refund_payment" not in shop.operations()
    _replays(env, "w3")


def test_refused_and_timed_out_approvals_refund_and_release(
    env: WorkflowEnvironment, shop: InMemoryShop
) -> None:
    env.start(NAME, dict(BIG, order_id="o-4"), workflow_id="w4")
    env.run(advance_time=False)
    token = _token(env, "w4")
    env.signal(token.workflow_id, token.signal, tokens.success({"approved": False}))
    env.run()
    assert env.failure("w4").error_type == "OrderRefused"
    env.start(NAME, dict(BIG, order_id="o-5"), workflow_id="w5")
    env.run()
    assert env.failure("w5").error_type == "States.Timeout"
    for order_id in ("o-4", "o-5"):
        assert shop.operations(order_id)[-2:] == ["refund_payment", "release_inventory"]
    _replays(env, "w5")
