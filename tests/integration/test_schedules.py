"""Schedules on real Kafka and Postgres: created, listed and deleted with the CLI, firing every
interval, and catching up the fire times missed while their orchestrator was down."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

from sagaflow import schedule
from sagaflow.cli import main
from sagaflow.core.messages import WorkflowCompleted
from sagaflow.readmodel import queries
from tests.children_support import free_port, owned
from tests.sagas import Deployment
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TARGET = ["checkout_batch", "--input", '{"orders": []}']
"""A workflow of the example app that completes at once (a batch of no orders)."""


def fired(d: Deployment, name: str) -> dict[str, str]:
    """{child workflow id: status} of the workflows schedule NAME started, from the read model."""
    prefix = f"{schedule.schedule_id(name)}/"

    async def read() -> dict[str, str]:
        page = await queries.list_workflows(
            d.config.database_url, limit=500, filters=queries.Filters(id_prefix=prefix)
        )
        return {w["workflow_id"]: w["status"] for w in page.workflows}

    return asyncio.run(read())


def fire_time(child_id: str) -> float:
    stamp = child_id.rsplit("/", 1)[1]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC).timestamp()


@pytest.fixture
def cli(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    for key, value in deployment.env.items():
        monkeypatch.setenv(key, value)
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return deployment


def test_a_schedule_fires_every_interval_and_is_listed_and_deleted(
    cli: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    d = cli
    d.orchestrator()
    name = d.wid("every-2s")
    assert main(["schedule", "create", name, *TARGET, "--every", "2"]) == 0
    assert_eventually(
        lambda: sum(s == "completed" for s in fired(d, name).values()) >= 2,
        timeout=60,
        message=f"schedule {name} started two workflows that completed",
    )
    capsys.readouterr()
    assert main(["schedule", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["schedules"]
    mine = [s for s in listed if s["name"] == name]
    assert mine and mine[0]["workflow_type"] == "checkout_batch" and not mine[0]["paused"]

    assert main(["schedule", "delete", name]) == 0
    closed = d.wait_closed([schedule.schedule_id(name)], timeout_s=60)
    assert isinstance(closed[schedule.schedule_id(name)].body, WorkflowCompleted)


def test_a_schedule_catches_up_what_it_missed_while_its_orchestrator_was_down(
    cli: Deployment,
) -> None:
    d = cli
    first = d.orchestrator("orch-a", instance="a")
    name = d.wid("catch-up")
    argv = ["schedule", "create", name, *TARGET, "--every", "1", "--overlap", "allow_all"]
    assert main([*argv, "--catchup-window", "120"]) == 0
    assert_eventually(
        lambda: len(fired(d, name)) >= 1, timeout=60, message="the schedule fired once"
    )
    first.kill()
    down_at = time.time()
    # The downtime is the scenario, not a synchronisation: the fire times in it are missed.
    time.sleep(5)
    d.orchestrator("orch-a2", instance="a")
    up_at = time.time()

    def caught_up() -> bool:
        during = [c for c in fired(d, name) if down_at + 1 < fire_time(c) < up_at - 1]
        return len(during) >= 2

    assert_eventually(
        caught_up, timeout=90, message="fire times missed during the downtime were started"
    )


def _call(port: int, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_schedules_api_creates_lists_and_deletes(deployment: Deployment) -> None:
    d = deployment
    port = free_port()
    d.orchestrator(SAGAFLOW_HTTP_PORT=str(port))
    assert_eventually(lambda: bool(owned(port)), timeout=60, message="the orchestrator is up")
    name = d.wid("api")
    spec = {"name": name, "workflow_type": "checkout_batch", "interval_s": 2}

    status, answer = _call(port, "POST", "/schedules", {**spec, "interval_s": 0})
    assert (status, answer.get("field")) == (400, "interval_s")
    status, answer = _call(port, "POST", "/schedules", {**spec, "every": 2})
    assert (status, answer.get("field")) == (400, "every")
    status, answer = _call(port, "POST", "/schedules", {**spec, "input": {"orders": []}})
    assert status == 202 and answer["workflow_id"] == schedule.schedule_id(name)

    def listed() -> bool:
        code, body = _call(port, "GET", "/schedules")
        return code == 200 and any(s["name"] == name for s in body["schedules"])

    assert_eventually(listed, timeout=60, message="GET /schedules lists the new schedule")
    assert_eventually(
        lambda: any(s == "completed" for s in fired(d, name).values()),
        timeout=60,
        message="the schedule fired",
    )
    assert _call(port, "POST", f"/schedules/{name}/explode")[0] == 404
    assert _call(port, "POST", f"/schedules/{name}/delete")[0] == 202
    closed = d.wait_closed([schedule.schedule_id(name)], timeout_s=60)
    assert isinstance(closed[schedule.schedule_id(name)].body, WorkflowCompleted)
