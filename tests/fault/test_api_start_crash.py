"""kill -9 the API process right before and right after it sends a StartWorkflow: a client that
retries the same request until it is answered ends with exactly one workflow started, never with
a 202 for a start that was lost, nor with a second run."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sagaflow.core.messages import CommandRejected, WorkflowCompleted, WorkflowStarted
from sagaflow.faults import FAULT_ENV, MARKER_ENV
from tests.integration.test_workflow_ids import records_of
from tests.sagas import Deployment, order
from tests.services import Service
from tests.support import assert_eventually

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post_start(port: int, body: dict[str, object]) -> int | None:
    """The HTTP status, or None when the server went away without answering."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/workflows",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.mark.parametrize("fault", ["api_before_start_send", "api_after_start_send"])
def test_a_retried_start_survives_a_kill_around_the_send(
    deployment: Deployment, fault: str, tmp_path: Path
) -> None:
    d = deployment
    port = free_port()
    marker = tmp_path / "fired"
    api: Service = d.orchestrator(
        "orch-doomed",
        instance="a",
        SAGAFLOW_HTTP_PORT=str(port),
        **{FAULT_ENV: fault, MARKER_ENV: str(marker)},
    )
    d.worker()
    wid = d.wid("api-start")
    body: dict[str, object] = {"type": "checkout", "id": wid, "input": order(wid)}

    # The client: retry the same request until it is answered (the platform restarts the API).
    answers: list[int | None] = []

    def answered() -> bool:
        nonlocal api
        if not api.alive():
            api = d.orchestrator("orch-restarted", instance="a", SAGAFLOW_HTTP_PORT=str(port))
        answers.append(post_start(port, body))
        return answers[-1] == 202

    assert_eventually(answered, timeout=120, message="the retried start answered 202")
    assert marker.read_text().split() == [fault], "the API process died at the fault point"
    assert answers[0] is None, "the first request was never answered"

    closed = d.wait_closed([wid], timeout_s=120)
    assert isinstance(closed[wid].body, WorkflowCompleted)
    found = records_of(d, wid, lambda f: isinstance(f[-1].event.body, WorkflowCompleted))
    assert sum(isinstance(r.event.body, WorkflowStarted) for r in found) == 1
    assert not [r for r in found if isinstance(r.event.body, CommandRejected)]
    assert [r["kind"] for r in d.ledger([wid])] == ["charge"]
