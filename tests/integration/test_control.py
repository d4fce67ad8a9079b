"""Terminate and workflow timeouts on real Kafka and Postgres, with the orchestrator and worker
services running: a checkout saga that has charged the card and waits for approval is
terminated through the API; no compensation runs (no refund), the read model says terminated
with who and why, and a late activity report for it is rejected as closed. Another one started
with an execution timeout closes as timed_out, likewise without compensation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sagaflow.core import messages as m
from sagaflow.examples.checkout import registry
from sagaflow_orchestrator.loop import Orchestrator
from sagaflow_orchestrator.web import make_app
from tests.readmodel_support import running_projector
from tests.sagas import Deployment, order
from tests.support import assert_eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

Api = TestClient[web.Request, web.Application]


async def workflow(client: Api, wid: str) -> dict[str, Any] | None:
    r = await client.get(f"/workflows/{wid}")
    return await r.json() if r.status == 200 else None


async def history(client: Api, wid: str) -> list[dict[str, Any]]:
    r = await client.get(f"/workflows/{wid}/history")
    assert r.status == 200
    events: list[dict[str, Any]] = (await r.json())["events"]
    return events


def test_a_saga_waiting_for_a_signal_is_terminated_without_compensation(
    deployment: Deployment,
) -> None:
    d = deployment
    d.orchestrator()
    d.worker()
    wid = d.wid("terminated")

    async def body() -> None:
        app = make_app(d.config, Orchestrator(d.config, registry))
        with running_projector(d.config):
            async with TestClient(TestServer(app)) as client:
                big = order(wid, amount_cents=500_000, approval_timeout_s=3_600)
                r = await client.post(
                    "/workflows", json={"type": "checkout", "id": wid, "input": big}
                )
                assert r.status == 202

                async def waiting() -> dict[str, Any] | None:
                    wf = await workflow(client, wid)
                    return wf if wf and wf.get("signal_waits") else None

                wf = await assert_eventually_async(
                    timeout=90, condition=waiting, message=f"{wid} waits for approval"
                )
                assert wf["signal_waits"][0]["name"] == "approve"
                assert [r["kind"] for r in await asyncio.to_thread(d.ledger, [wid])] == ["charge"]

                # Bad input is refused naming the field, and nothing is sent.
                url = f"/workflows/{wid}/terminate"
                for bad, field in [
                    (None, "body"),
                    ({}, "reason"),
                    ({"reason": "  "}, "reason"),
                    ({"reason": "x", "by": 5}, "by"),
                    ({"reason": "x", "why": "y"}, "why"),
                ]:
                    r = await client.post(url, json=bad)
                    assert r.status == 400, bad
                    assert (await r.json())["field"] == field, bad
                r = await client.post("/workflows/no-such-id/terminate", json={"reason": "x"})
                assert r.status == 404

                r = await client.post(url, json={"reason": "fraud suspected", "by": "ops:ann"})
                assert r.status == 202

                async def terminated() -> dict[str, Any] | None:
                    wf = await workflow(client, wid)
                    return wf if wf and wf["status"] == "terminated" else None

                wf = await assert_eventually_async(
                    timeout=30, condition=terminated, message=f"{wid} terminated"
                )
                assert wf["error"]["message"] == "fraud suspected"
                assert wf["error"]["by"] == "ops:ann"
                assert wf["signal_waits"] == [] and wf["pending_timers"] == []

                events = await history(client, wid)
                assert events[-1]["type"] == "WorkflowTerminated"
                assert not any(e["body"].get("compensation") for e in events), "compensated"
                assert [r["kind"] for r in await asyncio.to_thread(d.ledger, [wid])] == [
                    "charge"
                ], "no refund"

                r = await client.post(url, json={"reason": "again"})
                assert r.status == 409 and (await r.json())["field"] == "workflow_id"

                # A worker's report arriving now (the charge step, reported again) is refused.
                charge = next(
                    e
                    for e in events
                    if e["type"] == "ActivityScheduled"
                    and e["body"]["activity_name"] == "charge_payment"
                )
                late = m.CompleteActivity(wid, charge["run_id"], charge["seq"], 1, b"{}", "late-1")
                d.client().send(late)

                async def refused() -> list[dict[str, Any]] | None:
                    wf = await workflow(client, wid)
                    rejections = wf["rejections"] if wf else []
                    found = [r for r in rejections if r["command_type"] == "CompleteActivity"]
                    return found or None

                (rejection,) = await assert_eventually_async(
                    timeout=30, condition=refused, message="the late report rejected"
                )
                assert rejection["reason"] == "workflow_closed"
                assert "terminated" in rejection["message"]

    asyncio.run(body())


def test_a_saga_past_its_execution_timeout_closes_as_timed_out(deployment: Deployment) -> None:
    d = deployment
    d.orchestrator()
    d.worker()
    wid = d.wid("timed-out")

    async def body() -> None:
        app = make_app(d.config, Orchestrator(d.config, registry))
        with running_projector(d.config):
            async with TestClient(TestServer(app)) as client:
                big = order(wid, amount_cents=500_000, approval_timeout_s=3_600)
                start = {"type": "checkout", "id": wid, "input": big, "run_timeout_s": -1}
                r = await client.post("/workflows", json=start)
                assert r.status == 400 and (await r.json())["field"] == "run_timeout_s"
                start = {"type": "checkout", "id": wid, "input": big, "execution_timeout_s": 4}
                r = await client.post("/workflows", json=start)
                assert r.status == 202

                async def timed_out() -> dict[str, Any] | None:
                    wf = await workflow(client, wid)
                    return wf if wf and wf["status"] == "timed_out" else None

                wf = await assert_eventually_async(
                    timeout=60, condition=timed_out, message=f"{wid} timed out"
                )
                assert wf["error"]["timeout"] == "execution"
                events = await history(client, wid)
                assert events[-1]["type"] == "WorkflowTimedOut"
                assert any(e["type"] == "SignalWaitStarted" for e in events), "it was waiting"
                assert not any(e["body"].get("compensation") for e in events), "compensated"
                kinds = [r["kind"] for r in await asyncio.to_thread(d.ledger, [wid])]
                assert kinds == ["charge"], "no refund"

    asyncio.run(body())
