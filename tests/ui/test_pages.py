"""The UI's answers to bad input, missing things and a missing token, over real HTTP against the
real Kafka and Postgres (the app runs in this process; no orchestrator is needed for these)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sagaflow.ui import make_ui_app
from tests.sagas import prepare

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "ui-test-token"


def _with_ui(
    kafka_bootstrap: str,
    database_url: str,
    check: Callable[[aiohttp.ClientSession, str], Awaitable[None]],
) -> None:
    d = prepare(kafka_bootstrap, database_url, "ui-pages", 1, SAGAFLOW_API_TOKEN=TOKEN)

    async def run() -> None:
        root = web.Application()
        root.add_subapp("/ui", make_ui_app(d.config))
        runner = web.AppRunner(root)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with aiohttp.ClientSession() as http:
                await check(http, f"http://127.0.0.1:{runner.addresses[0][1]}/ui")
        finally:
            await runner.cleanup()

    asyncio.run(run())


async def _get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str]:
    async with http.get(url, **kw) as resp:
        return resp.status, await resp.text()


async def _post(http: aiohttp.ClientSession, url: str, data: dict[str, str]) -> tuple[int, str]:
    async with http.post(url, data=data, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", "") or await resp.text()


def test_bad_input_and_missing_things_get_pages_that_say_what_to_do(
    kafka_bootstrap: str, database_url: str
) -> None:
    async def check(http: aiohttp.ClientSession, ui: str) -> None:
        status, html = await _get(http, f"{ui}/?status=bogus")
        assert status == 400 and "is not one of running" in html
        status, html = await _get(http, f"{ui}/?version=two")
        assert status == 400 and "must be a whole number" in html
        status, html = await _get(http, f"{ui}/?from=yesterday")
        assert status == 400 and "is not a date and time" in html
        status, html = await _get(http, f"{ui}/?cursor=not-ours")
        assert status == 400 and "was not made by this UI" in html
        status, html = await _get(http, f"{ui}/workflows/no-such-workflow-anywhere")
        assert status == 404 and "No workflow no-such-workflow-anywhere" in html
        status, html = await _get(http, f"{ui}/?q=no-such-workflow-anywhere")
        assert status == 200 and "No workflow matches these filters" in html
        status, html = await _get(http, f"{ui}/dlq")
        assert status == 200 and "No dead letters" in html
        status, html = await _get(http, f"{ui}/dlq/0/5")
        assert status == 503 and "is empty" in html

    _with_ui(kafka_bootstrap, database_url, check)


def test_actions_need_the_api_token(kafka_bootstrap: str, database_url: str) -> None:
    async def check(http: aiohttp.ClientSession, ui: str) -> None:
        signal = f"{ui}/workflows/ui-auth-1/signal"
        status, html = await _post(http, signal, {"name": "approve", "payload": "{}"})
        assert status == 403 and "API token is missing or wrong" in html
        status, html = await _post(
            http, signal, {"name": "approve", "payload": "{}", "token": "wrong"}
        )
        assert status == 403
        status, html = await _post(http, f"{ui}/workflows/ui-auth-1/cancel", {})
        assert status == 403
        status, html = await _post(http, f"{ui}/dlq/redrive-all", {})
        assert status == 403
        terminate = f"{ui}/workflows/ui-auth-1/terminate"
        status, html = await _post(http, terminate, {"reason": "stuck"})
        assert status == 403
        status, html = await _post(http, terminate, {"token": TOKEN})
        assert status == 400 and "a terminate needs a reason" in html
        # With the token the form is read: a payload that is not JSON is refused by name.
        status, html = await _post(
            http, signal, {"name": "approve", "payload": "{oops", "token": TOKEN}
        )
        assert status == 400 and "the payload is not JSON" in html
        status, location = await _post(
            http, signal, {"name": "approve", "payload": '{"approved": true}', "token": TOKEN}
        )
        assert status == 303 and "/ui/workflows/ui-auth-1?sent=signal+approve" in location
        # The page it goes back to looks for the event recording this very command.
        assert "command=ui-signal%3Aui-auth-1%3Aapprove%3A" in location and "after=0" in location

    _with_ui(kafka_bootstrap, database_url, check)
