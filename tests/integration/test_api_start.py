"""Starting through the API: a retried request is the same command, with or without an id."""

from __future__ import annotations

import asyncio

import pytest

from sagaflow.config import Config
from tests.integration.test_api import GOOD, api, config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

__all__ = ["config"]


def test_an_idempotency_key_gives_a_retried_request_the_same_generated_id(config: Config) -> None:
    async def body() -> None:
        async with api(config) as client:
            ids = []
            for key in ("order-7-attempt", "order-7-attempt", "order-8-attempt"):
                r = await client.post(
                    "/workflows",
                    json={"type": "pay", "input": GOOD},
                    headers={"Idempotency-Key": key},
                )
                assert r.status == 202, await r.text()
                ids.append((await r.json())["workflow_id"])
            assert ids[0] == ids[1] != ids[2]
            r = await client.post(
                "/workflows", json={"type": "pay", "input": GOOD}, headers={"Idempotency-Key": ""}
            )
            assert r.status == 400 and (await r.json())["field"] == "Idempotency-Key"

    asyncio.run(body())
