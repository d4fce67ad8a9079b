"""Page load times with 10,000 workflows in the read model: the list, its filters, its second
page, and one workflow's page.

The rows are written straight into the read model's table (a type of their own, removed after).
The workflow page is a real one: a checkout state machine execution run on the test kit (waiting
for its approval), its events produced to the events topic and projected by the read model's own
store, its definition deployed, so the page reads the log, replays the run for the state graph and
draws it. The UI app runs in this process on a real socket against the real Kafka and Postgres.
Each page is fetched a few times; the median must stay under a second (what a person would call
slow) and the figures are printed for the closing note:
    pytest tests/ui/test_page_load.py -s
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import aiohttp
import psycopg
import pytest
from aiohttp import web

from sagaflow import codec
from sagaflow.asl import store
from sagaflow.asl.examples import checkout_definition
from sagaflow.asl.examples import registry as asl_examples
from sagaflow.asl.interpreter import register
from sagaflow.config import Config
from sagaflow.db.migrate import migrate
from sagaflow.examples.shop import InMemoryShop
from sagaflow.kafka.clients import command_producer
from sagaflow.readmodel.store import Located, store_batch
from sagaflow.testing import WorkflowEnvironment
from sagaflow.ui import make_ui_app
from sagaflow.workflow import Registry
from tests.sagas import order, prepare

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WORKFLOWS = 10_000
TRIES = 5


async def _seed(url: str, workflow_type: str) -> None:
    await migrate(url)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute(
            "INSERT INTO sagaflow_workflows (workflow_id, run_id, type, version, status, input,"
            " created_at, updated_at, last_seq)"
            " SELECT %s || '-' || lpad(i::text, 5, '0'), 'run', %s, 1 + i %% 2,"
            " (ARRAY['running','completed','failed','cancelled'])[1 + i %% 4],"
            " jsonb_build_object('n', i), now() - i * interval '1 second',"
            " now() - i * interval '1 second', 3"
            " FROM generate_series(1, %s) AS i",
            (workflow_type, workflow_type, WORKFLOWS),
        )
        await conn.commit()


async def _drop(url: str, workflow_type: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("DELETE FROM sagaflow_workflows WHERE type = %s", (workflow_type,))
        await conn.commit()


MACHINE = "checkout-asl-load"
ONE_WORKFLOW = "one workflow (state machine: log read, replay, graph)"


def _record_execution(config: Config, url: str, workflow_id: str) -> int:
    """A state machine execution waiting for approval, in the log and the read model as the
    services would leave it; the number of its events."""
    store.deploy(config, MACHINE, checkout_definition())
    registry = Registry()
    for a in asl_examples.activities.values():
        registry.activity(name=a.name, task_queue=a.task_queue)(a.fn)
    register(registry, MACHINE, checkout_definition())
    with WorkflowEnvironment(registry, resources={"shop": InMemoryShop()}) as env:
        big = order(workflow_id, amount_cents=500_000, approval_timeout_s=600)
        env.start(MACHINE, big, workflow_id=workflow_id)
        env.run(advance_time=False)
        history = env.history(workflow_id)
    producer = command_producer(config)
    # Not at offset 0, as on a live topic: a read from the very start waits for librdkafka's
    # offset query (about 500 ms), which no real workflow but a partition's first one pays.
    producer.produce(config.topics.events, b"not an event", b"someone-else")
    located: list[Located] = []
    for event in history:
        producer.produce(
            config.topics.events,
            codec.encode_event(event),
            workflow_id.encode(),
            on_delivery=lambda err, msg, e=event: located.append(
                Located(e, msg.partition(), msg.offset())
            ),
        )
    assert producer.flush(30) == 0 and len(located) == len(history)
    with psycopg.connect(url) as conn:
        store_batch(conn, sorted(located, key=lambda item: item.offset))
    return len(history)


async def _measure(
    url: str, workflow_type: str, config: Config, workflow_id: str
) -> dict[str, float]:
    root = web.Application()
    root.add_subapp("/ui", make_ui_app(config))
    runner = web.AppRunner(root)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}/ui"
    pages = {
        "list, newest 50": f"{base}/?type={workflow_type}",
        "list, status=failed": f"{base}/?type={workflow_type}&status=failed",
        "list, id search": f"{base}/?q={workflow_type}-0999",
        "list, version=2 and a time range": (
            f"{base}/?type={workflow_type}&version=2&from=2000-01-01T00:00"
        ),
        ONE_WORKFLOW: f"{base}/workflows/{workflow_id}",
    }
    medians: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(pages["list, newest 50"]) as resp:
                html = await resp.text()
                assert resp.status == 200, html[:500]
                assert html.count("data-workflow-id=") == 50
                assert f"{workflow_type}-00001" in html  # the newest first
            async with http.get(pages[ONE_WORKFLOW]) as resp:
                page = await resp.text()
                assert resp.status == 200, page[:500]
                assert 'data-state="Approval" data-mark="current"' in page, page[:2000]
            # The second page, through the cursor the first one handed out.
            start = html.index('rel="next" href="') + len('rel="next" href="')
            next_path = html[start : html.index('"', start)].replace("&amp;", "&")
            pages["list, page 2 (cursor)"] = f"http://127.0.0.1:{port}{next_path}"
            for name, page_url in pages.items():
                times = []
                for _ in range(TRIES):
                    t0 = time.perf_counter()
                    async with http.get(page_url) as resp:
                        body = await resp.text()
                        assert resp.status == 200, f"{name}: {body[:300]}"
                    times.append(time.perf_counter() - t0)
                medians[name] = statistics.median(times) * 1000
    finally:
        await runner.cleanup()
    return medians


def test_pages_load_fast_with_10000_workflows(database_url: str, kafka_bootstrap: str) -> None:
    workflow_type = f"load{uuid.uuid4().hex[:8]}"
    d = prepare(kafka_bootstrap, database_url, "ui-load", 1)
    workflow_id = d.wid("machine")

    async def run() -> dict[str, float]:
        await _seed(database_url, workflow_type)
        try:
            events = await asyncio.to_thread(_record_execution, d.config, database_url, workflow_id)
            print(f"the workflow page's execution has {events} events")
            return await _measure(database_url, workflow_type, d.config, workflow_id)
        finally:
            await _drop(database_url, workflow_type)

    medians = asyncio.run(run())
    for name, ms in medians.items():
        print(f"page load with {WORKFLOWS} workflows: {name}: {ms:.1f} ms (median of {TRIES})")
    slow = {n: ms for n, ms in medians.items() if ms > 1000}
    assert not slow, f"pages slower than 1 s with {WORKFLOWS} workflows: {slow}"
