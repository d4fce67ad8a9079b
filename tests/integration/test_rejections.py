"""Commands that make no sense are rejected, the rejection is recorded where the caller can see
it, and nothing else is affected."""

from __future__ import annotations

import pytest

from sagaflow.client import follow
from sagaflow.core.messages import CommandRejected, StartWorkflow, WorkflowCompleted
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _rejections(d: Deployment) -> dict[str, CommandRejected]:
    out: dict[str, CommandRejected] = {}
    for rec in follow(d.config, stop=lambda: True):
        if isinstance(rec.event.body, CommandRejected):
            out[rec.event.body.command_id] = rec.event.body
    return out


def test_nonsense_commands_are_recorded_rejections(deployment: Deployment) -> None:
    d = deployment
    d.orchestrator(SAGAFLOW_MAX_PAYLOAD_BYTES="2048")
    d.worker()
    client = d.client()
    ok = d.wid("rj-ok")
    client.start("checkout", order(ok), workflow_id=ok, command_id="c-ok")
    client.start("no_such_type", {}, workflow_id="rj-unknown", command_id="c-unknown-type")
    client.start("checkout", order(ok), workflow_id=ok, command_id="c-duplicate")
    client.signal("rj-nobody", "approve", {}, command_id="c-signal-unknown")
    client.send(StartWorkflow("rj-big", "checkout", b'"' + b"x" * 4096 + b'"', None, "c-big"))

    closed = d.wait_closed([ok])
    got = assert_eventually(
        lambda: len(_rejections(d)) >= 4 and _rejections(d),
        timeout=30,
        message="four rejections recorded",
    )

    assert isinstance(closed[ok].body, WorkflowCompleted), "good work is unaffected"
    assert got["c-unknown-type"].reason == "unknown_workflow_type"
    assert got["c-duplicate"].reason == "duplicate_workflow_id"
    assert got["c-signal-unknown"].reason == "workflow_not_found"
    assert got["c-big"].reason == "payload_too_large"
    assert all(r.message for r in got.values()), "every rejection says what to do"
