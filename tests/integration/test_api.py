"""The workflow HTTP API on real Kafka and Postgres: every status code, pagination, auth, and a
workflow driven through the API by a real orchestrator and projector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NotRequired, TypedDict, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sagaflow.config import Config
from sagaflow.core.messages import CommandRejected, WorkflowCompleted, WorkflowStarted
from sagaflow.workflow import Registry, WorkflowContext
from sagaflow_orchestrator.loop import Orchestrator
from sagaflow_orchestrator.web import make_app
from tests.readmodel_support import EventWriter, environment, running_projector
from tests.support import assert_eventually_async, running_loop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

T = TypeVar("T")


class Payment(TypedDict):
    amount_cents: int
    note: NotRequired[str]


registry = Registry()


@registry.workflow(name="pay", version=1)
async def pay(ctx: WorkflowContext, req: Payment) -> dict[str, Any]:
    go = await ctx.wait_for_signal("go")
    return {"paid": req["amount_cents"], "go": go}


GOOD = {"amount_cents": 1250}


@pytest.fixture
def config(kafka_bootstrap: str, database_url: str) -> Iterator[Config]:
    with environment(kafka_bootstrap, database_url, "api") as c:
        yield c


@asynccontextmanager
async def api(
    config: Config,
    orchestrator: Orchestrator | None = None,
    extra_routes: Callable[[web.Application], None] | None = None,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = make_app(config, orchestrator or Orchestrator(config, registry))
    if extra_routes is not None:
        extra_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield client


@contextmanager
def running_orchestrator(config: Config) -> Iterator[Orchestrator]:
    orchestrator = Orchestrator(config, registry)
    with running_loop(orchestrator.run, "orchestrator"):
        yield orchestrator


async def status_of(client: TestClient[web.Request, web.Application], wid: str) -> Any:
    response = await client.get(f"/workflows/{wid}")
    return (await response.json()) if response.status == 200 else None


# --------------------------------------------------------------------------- the happy path


def test_a_workflow_started_signalled_and_read_through_the_api(config: Config) -> None:
    async def body() -> None:
        with running_orchestrator(config) as orchestrator, running_projector(config):
            async with api(config, orchestrator) as client:

                async def ready() -> bool:
                    return (await client.get("/readyz")).status == 200

                await assert_eventually_async(
                    timeout=30, condition=ready, message="/readyz 200 with the orchestrator running"
                )
                r = await client.post(
                    "/workflows", json={"type": "pay", "id": "p-1", "input": GOOD}
                )
                assert r.status == 202 and await r.json() == {"workflow_id": "p-1"}
                # Repeating the same request is fine; the same id with other input is not.
                r = await client.post(
                    "/workflows", json={"type": "pay", "id": "p-1", "input": GOOD}
                )
                assert r.status == 202
                r = await client.post(
                    "/workflows", json={"type": "pay", "id": "p-1", "input": {"amount_cents": 1}}
                )
                assert r.status == 409 and (await r.json())["field"] == "id"

                async def running() -> Any:
                    wf = await status_of(client, "p-1")
                    return wf if wf and wf["status"] == "running" else None

                wf = await assert_eventually_async(
                    timeout=30, condition=running, message="p-1 running in the read model"
                )
                assert (wf["type"], wf["version"], wf["input"]) == ("pay", 1, GOOD)
                assert wf["rejections"] == []
                # What it waits for is projected with it (recorded in the same transaction).
                (wait,) = wf["signal_waits"]
                assert (wait["name"], wait["timeout_at_ms"]) == ("go", 0)
                assert wait["description"] == "waiting for signal go"
                # Once projected, the repeat is still idempotent and a conflict still 409.
                r = await client.post(
                    "/workflows", json={"type": "pay", "id": "p-1", "input": GOOD}
                )
                assert r.status == 202
                r = await client.post(
                    "/workflows", json={"type": "pay", "id": "p-1", "input": {"amount_cents": 2}}
                )
                assert r.status == 409

                r = await client.post("/workflows/p-1/signals/go", json={"by": "ann"})
                assert r.status == 202

                async def completed() -> Any:
                    wf = await status_of(client, "p-1")
                    return wf if wf and wf["status"] == "completed" else None

                wf = await assert_eventually_async(
                    timeout=30, condition=completed, message="p-1 completed"
                )
                assert wf["result"] == {"paid": 1250, "go": {"by": "ann"}}
                assert [s["name"] for s in wf["received_signals"]] == ["go"]
                assert wf["signal_waits"] == []

                r = await client.get("/workflows/p-1/history")
                assert r.status == 200
                events = (await r.json())["events"]
                assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
                assert events[0]["type"] == "WorkflowStarted"
                assert events[-1]["type"] == "WorkflowCompleted"

                # A closed workflow takes no more signals or cancellations.
                r = await client.post("/workflows/p-1/signals/go", json=None)
                assert r.status == 409
                r = await client.post("/workflows/p-1/cancel")
                assert r.status == 409

                # A generated id; then cancel it while it waits for its signal.
                r = await client.post("/workflows", json={"type": "pay", "input": GOOD})
                assert r.status == 202
                wid = (await r.json())["workflow_id"]
                r = await client.post(f"/workflows/{wid}/cancel", json={"reason": "test"})
                assert r.status == 202

                async def cancelled() -> Any:
                    wf = await status_of(client, wid)
                    return wf if wf and wf["status"] == "cancelled" else None

                await assert_eventually_async(
                    timeout=30, condition=cancelled, message=f"{wid} cancelled"
                )

    asyncio.run(body())


# --------------------------------------------------------------------------- errors


def test_every_error_status_names_the_field_and_what_to_do(config: Config) -> None:
    def boom(app: web.Application) -> None:
        async def fail(request: web.Request) -> web.Response:
            raise RuntimeError("secret internal detail")

        app.router.add_get("/boom", fail)

    async def body() -> None:
        async with api(config, extra_routes=boom) as client:
            cases: list[tuple[dict[str, Any], int, str]] = [
                ({"type": "nope", "input": GOOD}, 400, "type"),
                ({"input": GOOD}, 400, "type"),
                ({"type": "pay", "input": {"amount_cents": "12"}}, 400, "input.amount_cents"),
                ({"type": "pay", "input": {}}, 400, "input.amount_cents"),
                ({"type": "pay", "input": {**GOOD, "extra": 1}}, 400, "input.extra"),
                ({"type": "pay", "input": GOOD, "version": 9}, 400, "version"),
                ({"type": "pay", "input": GOOD, "id": ""}, 400, "id"),
                ({"type": "pay", "input": GOOD, "colour": "red"}, 400, "colour"),
                (
                    {
                        "type": "pay",
                        "input": {**GOOD, "note": "x" * (config.max_payload_bytes + 1)},
                    },
                    413,
                    "input",
                ),
            ]
            for request, status, field in cases:
                r = await client.post("/workflows", json=request)
                answer = await r.json()
                assert (r.status, answer.get("field")) == (status, field), request
                assert answer["error"]

            r = await client.post(
                "/workflows", data=b"{not json", headers={"Content-Type": "application/json"}
            )
            assert r.status == 400 and (await r.json())["field"] == "body"
            r = await client.post("/workflows", data=b"x" * (config.max_payload_bytes + 64_000))
            assert r.status == 413 and "error" in await r.json()

            for method, path in [
                ("GET", "/workflows/ghost"),
                ("GET", "/workflows/ghost/history"),
                ("POST", "/workflows/ghost/signals/go"),
                ("POST", "/workflows/ghost/cancel"),
            ]:
                r = await client.request(method, path)
                answer = await r.json()
                assert r.status == 404, path
                assert "ghost" in answer["error"]

            r = await client.get("/no/such/route")
            assert r.status == 404 and "openapi.json" in (await r.json())["error"]

            r = await client.get("/boom")
            answer = await r.json()
            assert r.status == 500
            assert answer["error"].startswith("internal error")
            assert answer["request_id"] == r.headers["X-Request-Id"]
            assert "secret" not in await r.text() and "Traceback" not in await r.text()

            # Alive, but not ready: this orchestrator owns no partitions (it is not running).
            assert (await client.get("/healthz")).status == 200
            r = await client.get("/readyz")
            answer = await r.json()
            assert r.status == 503
            assert answer["checks"]["kafka"] == "ok" and answer["checks"]["postgres"] == "ok"
            assert answer["checks"]["orchestrator"] != "ok"
            assert (await client.get("/metrics")).status == 200
            r = await client.get("/openapi.json")
            assert r.status == 200 and (await r.json())["openapi"].startswith("3.1")

    asyncio.run(body())


# --------------------------------------------------------------------------- reads


def test_list_pages_with_a_cursor_and_filters(config: Config) -> None:
    w = EventWriter(config)
    for i in range(7):
        w.event(f"wf-{i}", WorkflowStarted("pay" if i % 2 else "ship", 1, b"{}", i))
    w.event("wf-0", WorkflowCompleted(b"null"))
    w.event("wf-3", CommandRejected("c-9", "SignalWorkflow", "workflow_closed", "closed"), seq=0)
    w.flush()

    async def body() -> None:
        with running_projector(config):
            async with api(config) as client:

                async def projected() -> bool:
                    page = await (await client.get("/workflows?limit=500")).json()
                    statuses = {x["workflow_id"]: x["status"] for x in page["workflows"]}
                    return len(statuses) == 7 and statuses["wf-0"] == "completed"

                await assert_eventually_async(
                    timeout=30, condition=projected, message="7 workflows projected"
                )

                seen: list[str] = []
                cursor: str | None = None
                pages = 0
                while True:
                    query = "/workflows?limit=3" + (f"&cursor={cursor}" if cursor else "")
                    page = await (await client.get(query)).json()
                    seen += [x["workflow_id"] for x in page["workflows"]]
                    pages += 1
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                assert pages == 3
                # Newest first (created_at from the events' times), each exactly once.
                assert seen == [f"wf-{i}" for i in reversed(range(7))]

                page = await (await client.get("/workflows?type=pay")).json()
                assert [x["workflow_id"] for x in page["workflows"]] == ["wf-5", "wf-3", "wf-1"]
                page = await (await client.get("/workflows?status=completed")).json()
                assert [x["workflow_id"] for x in page["workflows"]] == ["wf-0"]

                for query, field in [
                    ("status=sleeping", "status"),
                    ("limit=0", "limit"),
                    ("limit=abc", "limit"),
                    ("cursor=%%%", "cursor"),
                ]:
                    r = await client.get(f"/workflows?{query}")
                    assert r.status == 400 and (await r.json())["field"] == field, query

                wf = await (await client.get("/workflows/wf-3")).json()
                assert [(x["command_id"], x["reason"]) for x in wf["rejections"]] == [
                    ("c-9", "workflow_closed")
                ]
                r = await client.get("/workflows/wf-0/history?limit=1")
                hist = await r.json()
                assert [e["seq"] for e in hist["events"]] == [1] and hist["next_after_seq"] == 1
                r = await client.get("/workflows/wf-0/history?after_seq=1")
                assert [e["seq"] for e in (await r.json())["events"]] == [2]

    asyncio.run(body())


# --------------------------------------------------------------------------- auth


def test_bearer_auth(kafka_bootstrap: str, database_url: str) -> None:
    async def body(config: Config) -> None:
        async with api(config) as client:
            r = await client.get("/workflows")
            assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
            assert "Authorization" in (await r.json())["error"]
            r = await client.get("/workflows", headers={"Authorization": "Bearer wrong"})
            assert r.status == 403
            r = await client.post(
                "/workflows",
                json={"type": "pay", "input": GOOD},
                headers={"Authorization": "Bearer wrong"},
            )
            assert r.status == 403
            r = await client.get("/workflows", headers={"Authorization": "Bearer s3cret"})
            assert r.status == 200
            # Probes and scrapers need no token.
            assert (await client.get("/healthz")).status == 200
            assert (await client.get("/metrics")).status == 200

    with environment(
        kafka_bootstrap, database_url, "api-auth", SAGAFLOW_API_TOKEN="s3cret"
    ) as config:
        asyncio.run(body(config))
