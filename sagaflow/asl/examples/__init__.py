"""The checkout saga as a state machine, and the activities it calls.

`registry` holds the checkout example's activities and resources (sagaflow.examples.checkout)
plus `request_approval`, the Task that receives the approval's task token. Deploy the machine
with `sagaflow asl deploy sagaflow/asl/examples/checkout.asl.yaml --name checkout-asl` and run
the services with SAGAFLOW_APP=sagaflow.asl.examples:registry.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from sagaflow.asl.model import load
from sagaflow.examples import checkout
from sagaflow.workflow import ActivityContext, Registry

CHECKOUT_FILE = "checkout.asl.yaml"

registry = Registry()
for _activity in checkout.registry.activities.values():
    registry.activity(
        name=_activity.name,
        task_queue=_activity.task_queue,
        retry_policy=_activity.options.retry_policy,
        start_to_close_timeout=_activity.options.start_to_close_timeout,
        schedule_to_close_timeout=_activity.options.schedule_to_close_timeout,
    )(_activity.fn)
for _name, _factory in checkout.registry.resources.items():
    registry.resource(_name)(_factory)


@registry.activity(name="request_approval", task_queue="email")
def request_approval(ctx: ActivityContext, req: dict[str, Any]) -> dict[str, Any]:
    """Asks a person to approve the order. The approver answers with the task token
    (`sagaflow asl task-success TOKEN --output '{"approved": true}'`); the token is also in
    the workflow's history, in this activity's input."""
    return {"requested": True, "order_id": req["order_id"]}


def checkout_text() -> str:
    return resources.files("sagaflow.asl.examples").joinpath(CHECKOUT_FILE).read_text()


def checkout_definition() -> dict[str, Any]:
    return load(checkout_text(), CHECKOUT_FILE)
