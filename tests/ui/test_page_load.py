"""Page load times of the workflows list with 10,000 workflows in the read model.

The rows are written straight into the read model's table (a type of their own, removed after),
and the UI app runs in this process on a real socket against the real Postgres. Each page is
fetched a few times; the median must stay under a second (what a person would call slow) and
the figures are printed for the closing note:
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

from sagaflow.db.migrate import migrate
from sagaflow.ui import make_ui_app
from tests.services import config_of, service_env

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


async def _measure(url: str, workflow_type: str, kafka_bootstrap: str) -> dict[str, float]:
    config = config_of(service_env(kafka_bootstrap, url, f"t.ui-load.{uuid.uuid4().hex[:8]}."))
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
    }
    medians: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(pages["list, newest 50"]) as resp:
                html = await resp.text()
                assert resp.status == 200, html[:500]
                assert html.count("data-workflow-id=") == 50
                assert f"{workflow_type}-00001" in html  # the newest first
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


def test_workflows_list_loads_fast_with_10000_workflows(
    database_url: str, kafka_bootstrap: str
) -> None:
    workflow_type = f"load{uuid.uuid4().hex[:8]}"

    async def run() -> dict[str, float]:
        await _seed(database_url, workflow_type)
        try:
            return await _measure(database_url, workflow_type, kafka_bootstrap)
        finally:
            await _drop(database_url, workflow_type)

    medians = asyncio.run(run())
    for name, ms in medians.items():
        print(f"page load with {WORKFLOWS} workflows: {name}: {ms:.1f} ms (median of {TRIES})")
    slow = {n: ms for n, ms in medians.items() if ms > 1000}
    assert not slow, f"pages slower than 1 s with {WORKFLOWS} workflows: {slow}"
