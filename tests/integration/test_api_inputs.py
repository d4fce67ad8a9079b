"""Inputs that used to answer 500 (issue 10, finding 7) answer 400 naming the field, on real
Kafka and Postgres: NUL characters, lone surrogates, JSON nested 100,000 deep, a non-ASCII
Authorization header, %00 in a workflow id, and NUL in list filters."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sagaflow.config import Config
from sagaflow.workflow import Registry, WorkflowContext
from sagaflow_orchestrator.loop import Orchestrator
from sagaflow_orchestrator.web import make_app
from tests.readmodel_support import environment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

registry = Registry()


@registry.workflow(name="echo", version=1)
async def echo(ctx: WorkflowContext, value: Any) -> Any:
    return value


Client = TestClient[web.Request, web.Application]


@asynccontextmanager
async def api(config: Config) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(config, Orchestrator(config, registry)))) as c:
        yield c


async def raw_body(client: Client, method: str, path: str, body: bytes) -> tuple[int, Any]:
    r = await client.request(
        method, path, data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    return r.status, await r.json()


def run(kafka_bootstrap: str, database_url: str, check: Any) -> None:
    async def body(config: Config) -> None:
        async with api(config) as client:
            await check(client)

    with environment(kafka_bootstrap, database_url, "api-inputs", SAGAFLOW_API_TOKEN=TOKEN) as c:
        asyncio.run(body(c))


def assert_400(status: int, answer: Any, field: str) -> None:
    assert status == 400, answer
    assert answer["field"] == field, answer
    assert answer["error"], answer


def test_nul_in_any_input_string_is_a_400_naming_it(
    kafka_bootstrap: str, database_url: str
) -> None:
    async def check(client: Client) -> None:
        start = {"type": "echo", "id": "nul-1", "input": {"note": "a\u0000b"}}
        assert_400(
            *await raw_body(client, "POST", "/workflows", json.dumps(start).encode()), "input.note"
        )
        start = {"type": "echo", "id": "nul-\u0000", "input": 1}
        assert_400(*await raw_body(client, "POST", "/workflows", json.dumps(start).encode()), "id")
        status, answer = await raw_body(
            client, "POST", "/workflows/w1/cancel", json.dumps({"reason": "x\u0000"}).encode()
        )
        assert_400(status, answer, "reason")
        status, answer = await raw_body(
            client, "POST", "/workflows/w1/signals/go", json.dumps({"by": ["\u0000"]}).encode()
        )
        assert_400(status, answer, "body.by[0]")
        assert "NUL" in answer["error"]

    run(kafka_bootstrap, database_url, check)


def test_lone_surrogates_are_a_400(kafka_bootstrap: str, database_url: str) -> None:
    async def check(client: Client) -> None:
        start = b'{"type": "echo", "id": "s-1", "input": {"x": "\\ud800"}}'
        status, answer = await raw_body(client, "POST", "/workflows", start)
        assert_400(status, answer, "input.x")
        assert "surrogate" in answer["error"]
        status, answer = await raw_body(client, "POST", "/workflows/w1/signals/go", b'"\\udfff"')
        assert_400(status, answer, "body")

    run(kafka_bootstrap, database_url, check)


def test_json_nested_100000_deep_is_a_400(kafka_bootstrap: str, database_url: str) -> None:
    deep = b'{"type": "echo", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    shallow_but_deep = b'{"type": "echo", "input": ' + b"[" * 500 + b"]" * 500 + b"}"

    async def check(client: Client) -> None:
        status, answer = await raw_body(client, "POST", "/workflows", deep)
        # Over the body limit it is a 413; either way a 4xx naming what to fix, never a 500.
        assert status in (400, 413), answer
        status, answer = await raw_body(client, "POST", "/workflows", shallow_but_deep)
        assert_400(status, answer, "input")
        assert "nested" in answer["error"]

    run(kafka_bootstrap, database_url, check)

    async def big_limit(client: Client) -> None:
        status, answer = await raw_body(client, "POST", "/workflows", deep)
        assert_400(status, answer, "body")
        assert "nested too deeply" in answer["error"]

    async def body(config: Config) -> None:
        async with api(config) as client:
            await big_limit(client)

    with environment(
        kafka_bootstrap,
        database_url,
        "api-deep",
        SAGAFLOW_API_TOKEN=TOKEN,
        SAGAFLOW_MAX_PAYLOAD_BYTES=str(512 * 1024),
    ) as c:
        asyncio.run(body(c))


def test_non_ascii_authorization_header_is_a_400(kafka_bootstrap: str, database_url: str) -> None:
    async def check(client: Client) -> None:
        # Raw bytes: a latin-1 byte that is not UTF-8 reaches the server as a surrogate.
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(
            b"GET /workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr\xe9t\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), raw[:300]
        assert json.loads(payload)["field"] == "Authorization"
        r = await client.get("/workflows", headers={"Authorization": "Bearer żółw"})
        assert r.status in (400, 403) and r.status < 500

    run(kafka_bootstrap, database_url, check)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/workflows/a%00b"),
        ("GET", "/workflows/a%00b/history"),
        ("POST", "/workflows/a%00b/signals/go"),
        ("POST", "/workflows/a%00b/cancel"),
    ],
)
def test_nul_in_a_workflow_id_is_a_400(
    kafka_bootstrap: str, database_url: str, method: str, path: str
) -> None:
    async def check(client: Client) -> None:
        assert_400(*await raw_body(client, method, path, b"{}"), "workflow_id")

    run(kafka_bootstrap, database_url, check)


def test_nul_in_list_filters_is_a_400(kafka_bootstrap: str, database_url: str) -> None:
    forged = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00", "a\u0000"]).encode())

    async def check(client: Client) -> None:
        for query, field in (
            ("type=a%00b", "type"),
            ("status=running%00", "status"),
            ("cursor=%00", "cursor"),
            (f"cursor={forged.decode().rstrip('=')}", "cursor"),
        ):
            r = await client.get(f"/workflows?{query}", headers=AUTH)
            assert_400(r.status, await r.json(), field)

    run(kafka_bootstrap, database_url, check)


def test_non_finite_numbers_are_a_400(kafka_bootstrap: str, database_url: str) -> None:
    async def check(client: Client) -> None:
        for value in (b"NaN", b"1e999", b"-Infinity"):
            status, answer = await raw_body(
                client, "POST", "/workflows", b'{"type": "echo", "input": ' + value + b"}"
            )
            assert_400(status, answer, "body")
        r = await client.get(f"/workflows/w/history?after_seq={2**63}", headers=AUTH)
        assert_400(r.status, await r.json(), "after_seq")

    run(kafka_bootstrap, database_url, check)
