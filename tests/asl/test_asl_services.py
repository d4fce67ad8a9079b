"""The checkout saga as a state machine on real Kafka and Postgres with both services: deployed
with `sagaflow asl deploy`, started with `sagaflow start` and POST /workflows, approved through
a task token over HTTP and the CLI, the same ledger as the code version; a changed document
deployed while executions run becomes version 2 and the running ones finish on version 1."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sagaflow.asl.examples import CHECKOUT_FILE
from sagaflow.cli.main import main
from sagaflow.client import follow
from sagaflow.core import messages as m
from sagaflow.readmodel import queries
from tests.sagas import Deployment, order
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

APP = "sagaflow.asl.examples:registry"
FILE = Path(__file__).parents[2] / "sagaflow" / "asl" / "examples" / CHECKOUT_FILE
NAME = "checkout-asl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(d: Deployment, monkeypatch: pytest.MonkeyPatch, *argv: str) -> dict[str, Any]:
    """Run `sagaflow ... --json` against this deployment; its JSON output."""
    for key, value in d.env.items():
        if key.startswith("SAGAFLOW_"):
            monkeypatch.setenv(key, value)
    capture = _Capture()
    with monkeypatch.context() as patch:
        patch.setattr("sys.stdout", capture)
        code = main([*argv, "--json"])
    assert code == 0, capture.text
    parsed: dict[str, Any] = json.loads(capture.text)
    return parsed


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def post(port: int, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except urllib.error.URLError as exc:  # not listening yet: the caller polls
        return 0, str(exc)


def approval_token(d: Deployment, workflow_id: str, timeout_s: float = 60) -> str:
    """The token the approval Task handed its activity, read from the workflow's history."""
    deadline = time.monotonic() + timeout_s
    for rec in follow(d.config, stop=lambda: time.monotonic() > deadline):
        body = rec.event.body
        if (
            rec.event.workflow_id == workflow_id
            and isinstance(body, m.ActivityScheduled)
            and body.activity_name == "request_approval"
        ):
            return str(json.loads(body.input)["token"])
    raise AssertionError(f"{workflow_id} never asked for approval within {timeout_s}s")


def _kinds(d: Deployment, oid: str) -> list[str]:
    return sorted(r["kind"] for r in d.ledger([oid]))


def test_checkout_state_machine_on_the_services(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    d = deployment
    deployed = cli(d, monkeypatch, "asl", "deploy", str(FILE), "--name", NAME)
    assert (deployed["version"], deployed["created"]) == (1, True)
    again = cli(d, monkeypatch, "asl", "deploy", str(FILE), "--name", NAME)
    assert (again["version"], again["created"]) == (1, False)

    port = free_port()
    d.orchestrator(SAGAFLOW_APP=APP, SAGAFLOW_HTTP_PORT=str(port))
    d.env["SAGAFLOW_APP"] = APP
    d.worker()
    ok, declined, approved, refused, timed_out = (
        d.wid(n) for n in ("ok", "declined", "approved", "refused", "timeout")
    )
    cli(d, monkeypatch, "start", NAME, "--id", ok, "--input", json.dumps(order(ok)))
    assert_eventually(
        lambda: post(port, "/workflows", {"type": NAME, "id": declined,
                                          "input": order(declined, card="tok_declined")})[0]
        == 202,
        timeout=30,
        message="the orchestrator serves the deployed state machine over HTTP",
    )  # fmt: skip
    client = d.client()
    for wid in (approved, refused):
        client.start(NAME, order(wid, amount_cents=500_000), workflow_id=wid)
    client.start(NAME, order(timed_out, amount_cents=500_000, approval_timeout_s=2),
                 workflow_id=timed_out)  # fmt: skip

    # Approvals are asked for: those executions have started, on version 1. A changed document
    # deployed now becomes version 2, and they still finish on version 1.
    approved_token, refused_token = approval_token(d, approved), approval_token(d, refused)
    approval_token(d, timed_out)
    changed = FILE.read_text().replace("Comment: >", "Comment: >\n  (v2)", 1)
    v2_path = tmp_path / "checkout-v2.asl.yaml"
    v2_path.write_text(changed)
    assert cli(d, monkeypatch, "asl", "deploy", str(v2_path), "--name", NAME)["version"] == 2
    v2 = d.wid("v2")
    assert_eventually(
        lambda: post(port, "/workflows", {"type": NAME, "id": v2, "version": 2,
                                          "input": order(v2)})[0] == 202,
        timeout=30,
        message="a running orchestrator learns version 2 from the definitions topic",
    )  # fmt: skip

    answer = {"token": approved_token, "output": {"approved": True, "by": "http"}}
    status, _ = post(port, "/task-tokens/success", answer)
    assert status == 202
    cli(d, monkeypatch, "asl", "task-success", refused_token,
        "--output", json.dumps({"approved": False}))  # fmt: skip

    closed = d.wait_closed([ok, declined, approved, refused, timed_out, v2], timeout_s=120)

    completed = {w for w, e in closed.items() if isinstance(e.body, m.WorkflowCompleted)}
    assert completed == {ok, approved, v2}
    failures = {w: e.body.error_type for w, e in closed.items()
                if isinstance(e.body, m.WorkflowFailed)}  # fmt: skip
    assert failures == {declined: "PaymentDeclined", refused: "OrderRefused",
                        timed_out: "States.Timeout"}  # fmt: skip
    assert _kinds(d, ok) == ["charge"]
    assert _kinds(d, approved) == ["charge"]
    assert _kinds(d, declined) == []
    for wid in (refused, timed_out):
        assert assert_eventually(
            lambda wid=wid: _kinds(d, wid) == ["charge", "refund"],
            timeout=10,
            message=f"{wid} refunded once",
        )
    versions: dict[str, int] = {}
    deadline = time.monotonic() + 30
    for rec in follow(d.config, stop=lambda: len(versions) == 4 or time.monotonic() > deadline):
        wid = rec.event.workflow_id
        if isinstance(rec.event.body, m.WorkflowStarted) and wid in (approved, refused,
                                                                     timed_out, v2):  # fmt: skip
            versions[wid] = rec.event.body.version
    assert versions == {approved: 1, refused: 1, timed_out: 1, v2: 2}

    # Every state transition is an event; the read model projects them into the state path,
    # which the API's workflow and the read model's query show.
    def refused_path() -> Any:
        return asyncio.run(queries.state_path(d.config.database_url, refused))

    path = assert_eventually(
        lambda: (p := refused_path()) is not None and p["current"] is None and p, timeout=30,
        message="the refused execution's state path is projected",
    )  # fmt: skip
    assert path["visited"] == ["Defaults", "Reserve", "Charge", "NeedsApproval", "Approval",
                               "Approved", "Refused", "RefundPayment", "ReleaseInventory",
                               "Failed"]  # fmt: skip
    assert (path["failed"], path["active"]) == ("Failed", [])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/workflows/{ok}", timeout=10) as r:
        shown = json.loads(r.read())
    assert shown["state_path"]["visited"][-1] == "Done" and shown["state_path"]["failed"] is None


def test_a_follower_started_before_any_deploy_learns_each_new_version(
    deployment: Deployment,
) -> None:
    from sagaflow.asl import store
    from sagaflow.asl.examples import checkout_definition
    from sagaflow.workflow import Registry

    d = deployment
    registry = Registry()
    follower = store.attach(d.config, registry)  # nothing deployed yet
    try:
        # `sagaflow topics create` made the (empty) definitions topic with the others.
        assert store.topic_exists(d.config)
        assert NAME not in registry.workflows
        definition = checkout_definition()
        store.deploy(d.config, NAME, definition)
        assert_eventually(
            lambda: set(registry.workflows.get(NAME, {})) == {1},
            timeout=30,
            message="version 1 registered by the follower",
        )
        changed = {**definition, "Comment": "v2"}
        assert store.deploy(d.config, NAME, changed)[0].version == 2
        assert store.deploy(d.config, NAME, changed)[1] is False
        assert_eventually(
            lambda: set(registry.workflows.get(NAME, {})) == {1, 2},
            timeout=30,
            message="version 2 registered by the follower",
        )
    finally:
        follower.stop()
    fresh = Registry()
    store.Follower(d.config, fresh).load()
    assert set(fresh.workflows[NAME]) == {1, 2}  # a fresh orchestrator learns both from the log
