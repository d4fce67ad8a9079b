"""Queries and updates on real Kafka: answered by the orchestrator that owns the workflow, from
its live driver, by replay when the driver was evicted, and from the recorded history once the
workflow has closed; updates validated before anything is recorded, deduplicated by update id
across a restart of the orchestrator."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sagaflow.cli.eventlog import Logged, workflow_events
from sagaflow.cli.main import main
from sagaflow.cli.output import EXIT_FAILED
from sagaflow.client import Client, ReplyTimeoutError, reply_value
from sagaflow.config import Config
from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.examples.cart import registry
from sagaflow.kafka.admin import create_topics
from sagaflow_orchestrator.loop import Orchestrator
from sagaflow_orchestrator.web import make_app
from tests.support import assert_eventually, delete_topics, running_loop, unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def config(
    kafka_bootstrap: str, database_url: str, request: pytest.FixtureRequest
) -> Iterator[Config]:
    prefix = unique_prefix(request.node.name)
    config = Config.from_env(
        {
            "SAGAFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SAGAFLOW_DATABASE_URL": database_url,
            "SAGAFLOW_TOPIC_PREFIX": prefix,
            "SAGAFLOW_PARTITIONS": "3",
            "SAGAFLOW_ORCHESTRATOR_GROUP": f"{prefix}orchestrator",
            "SAGAFLOW_TRANSACTION_TIMEOUT_MS": "6000",
            "SAGAFLOW_CHECKPOINT_INTERVAL_MS": "500",
            "SAGAFLOW_INSTANCE_ID": prefix,
        }
    )
    create_topics(config, registry.task_queues())
    try:
        yield config
    finally:
        delete_topics(kafka_bootstrap, prefix)


@contextmanager
def orchestrating(config: Config, instance: str = "a") -> Iterator[Orchestrator]:
    orchestrator = Orchestrator(
        dataclasses.replace(config, instance_id=f"{config.instance_id}{instance}"), registry
    )
    with running_loop(orchestrator.run, f"orchestrator-{instance}"):
        yield orchestrator


def engine_of(orchestrator: Orchestrator, workflow_id: str) -> Engine:
    for owned in orchestrator._owned.values():
        if owned.engine.status(workflow_id) is not None:
            return owned.engine
    raise AssertionError(f"no owned partition knows {workflow_id}")


def started(client: Client, orchestrator: Orchestrator, wid: str, **order: Any) -> Engine:
    client.start("cart", {"owner": "ann", **order}, workflow_id=wid)
    assert_eventually(
        lambda: any(o.engine.status(wid) for o in orchestrator._owned.values()),
        timeout=30,
        message=f"{wid} was not started",
    )
    return engine_of(orchestrator, wid)


def recorded(config: Config, wid: str) -> list[m.Event]:
    return [r.event for r in workflow_events(config, wid) if isinstance(r, Logged)]


def test_a_live_and_an_evicted_workflow_answer_queries_and_record_nothing(config: Config) -> None:
    client = Client(config)
    with orchestrating(config) as orchestrator:
        live = started(client, orchestrator, "cart-live", hold=True)
        idle = started(client, orchestrator, "cart-idle")
        assert live.holds_driver("cart-live"), "an activity in flight keeps the coroutine"
        assert not idle.holds_driver("cart-idle"), "a cart waiting for a signal is evicted"
        before = (len(live.history("cart-live")), len(idle.history("cart-idle")))

        for wid in ("cart-live", "cart-idle"):
            reply = client.query(wid, "status", timeout_s=20)
            assert reply_value(reply) == {"cart": "open", "workflow": "running", "count": 0}
        assert not idle.holds_driver("cart-idle"), "answering by replay keeps no coroutine"
        assert (len(live.history("cart-live")), len(idle.history("cart-idle"))) == before
        unknown = client.query("cart-idle", "colour", timeout_s=20)
        assert (unknown.ok, unknown.error_type) == (False, "unknown_query")
        assert "'colour'" in unknown.message
    assert len(recorded(config, "cart-idle")) == before[1], "queries appended no event"


def test_a_closed_workflow_is_answered_from_its_final_state(config: Config) -> None:
    client = Client(config)
    with orchestrating(config) as orchestrator:
        engine = started(client, orchestrator, "cart-closed")
        assert reply_value(client.update("cart-closed", "add_item", {"sku": "tea", "quantity": 3}))
        client.signal("cart-closed", "checkout")
        assert_eventually(lambda: engine.status("cart-closed") == "completed", timeout=30)
        reply = client.query("cart-closed", "status", timeout_s=30)
        assert reply_value(reply) == {"cart": "checked_out", "workflow": "completed", "count": 1}
        assert reply_value(client.query("cart-closed", "items")) == [{"sku": "tea", "quantity": 3}]


def test_updates_are_validated_recorded_and_deduplicated_across_a_restart(config: Config) -> None:
    client = Client(config)
    with orchestrating(config, "a") as orchestrator:
        started(client, orchestrator, "cart-up")
        refused = client.update("cart-up", "add_item", {"sku": "tea", "quantity": 0})
        assert (refused.ok, refused.error_type) == (False, "validator_rejected")
        assert "at least 1" in refused.message
        kinds_after_refusal = [type(e.body) for e in recorded(config, "cart-up")]
        assert m.UpdateAccepted not in kinds_after_refusal, "a rejected update records nothing"

        first = client.update("cart-up", "add_item", {"sku": "tea", "quantity": 2}, update_id="u-1")
        assert reply_value(first) == 1
        events = recorded(config, "cart-up")
        accepted = [e.body for e in events if isinstance(e.body, m.UpdateAccepted)]
        completed = [e.body for e in events if isinstance(e.body, m.UpdateCompleted)]
        assert [a.update_id for a in accepted] == ["u-1"]
        assert [(c.update_id, c.result) for c in completed] == [("u-1", b"1")]

    with orchestrating(config, "b"):
        again = client.update(
            "cart-up", "add_item", {"sku": "other", "quantity": 5}, update_id="u-1", timeout_s=60
        )
        assert reply_value(again) == 1, "a repeated update id answers the first result"
        assert reply_value(client.query("cart-up", "items")) == [{"sku": "tea", "quantity": 2}]
    events = recorded(config, "cart-up")
    assert sum(isinstance(e.body, m.UpdateAccepted) for e in events) == 1


def test_no_orchestrator_means_a_timeout_that_says_what_to_do(config: Config) -> None:
    with pytest.raises(ReplyTimeoutError, match="is an orchestrator running"):
        Client(config).query("nobody", "status", timeout_s=2)


def test_the_http_api_and_the_cli_ask_and_wait(
    config: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def through_http(orchestrator: Orchestrator) -> None:
        async with TestClient(TestServer(make_app(config, orchestrator))) as http:
            url = "/workflows/cart-api"
            refused = await http.post(f"{url}/updates/add_item", json={"args": {"quantity": 0}})
            assert refused.status == 422, await refused.text()
            assert (await refused.json())["reason"] == "validator_rejected"
            item = {"sku": "tea", "quantity": 1}
            added = await http.post(
                f"{url}/updates/add_item", json={"args": item, "update_id": "api-1"}
            )
            assert added.status == 200, await added.text()
            assert await added.json() == {
                "workflow_id": "cart-api",
                "update": "add_item",
                "update_id": "api-1",
                "result": 1,
            }
            answer = await http.get(f"{url}/queries/items", params={"args": "null"})
            assert (answer.status, (await answer.json())["result"]) == (200, [item])
            unknown = await http.get(f"{url}/queries/colour")
            assert unknown.status == 404
            assert "'colour'" in (await unknown.json())["error"]
            missing = await http.get("/workflows/nobody/queries/items")
            assert (missing.status, (await missing.json())["reason"]) == (404, "workflow_not_found")

    client = Client(config)
    with orchestrating(config) as orchestrator:
        started(client, orchestrator, "cart-api")
        asyncio.run(through_http(orchestrator))
        for name, value in config_env(config).items():
            monkeypatch.setenv(name, value)
        assert main(["query", "cart-api", "status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["result"]["count"] == 1
        assert main(["update", "cart-api", "add_item", '{"quantity": -1}']) == EXIT_FAILED
        assert "at least 1" in capsys.readouterr().err

    async def unanswered() -> None:
        async with TestClient(TestServer(make_app(config, Orchestrator(config, registry)))) as http:
            late = await http.get("/workflows/cart-api/queries/items", params={"timeout_s": "1"})
            assert late.status == 504
            assert "is an orchestrator running" in (await late.json())["error"]

    asyncio.run(unanswered())


def config_env(config: Config) -> dict[str, str]:
    return {
        "SAGAFLOW_KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        "SAGAFLOW_TOPIC_PREFIX": config.topics.prefix,
        "SAGAFLOW_PARTITIONS": "3",
        "OTEL_SDK_DISABLED": "true",
    }
