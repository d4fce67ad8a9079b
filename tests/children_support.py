"""Helpers for the child-workflow tests that run two orchestrators: which orchestrator owns
which commands partition (from each one's /readyz), and workflow ids that land on a chosen
partition."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from typing import Any

from sagaflow.kafka.partition import partition_for
from sagaflow.readmodel import queries
from tests.sagas import Deployment
from tests.services import Service
from tests.support import assert_eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def owned(port: int) -> set[int]:
    """The commands partitions the orchestrator on `port` owns (empty while it is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        body = json.loads(err.read())
    except OSError:
        return set()
    return set(body.get("assigned") or [])


def two_orchestrators(d: Deployment) -> tuple[Service, set[int], Service, set[int]]:
    """Start orchestrators a and b and wait until they split the partitions between them."""
    ports = {"a": free_port(), "b": free_port()}
    a = d.orchestrator("orch-a", instance="a", SAGAFLOW_HTTP_PORT=str(ports["a"]))
    b = d.orchestrator("orch-b", instance="b", SAGAFLOW_HTTP_PORT=str(ports["b"]))
    total = d.config.partitions
    split: dict[str, set[int]] = {}

    def split_between_them() -> bool:
        split["a"], split["b"] = owned(ports["a"]), owned(ports["b"])
        return bool(split["a"]) and bool(split["b"]) and len(split["a"] | split["b"]) == total

    assert_eventually(
        split_between_them, timeout=90, message="orchestrators a and b share the partitions"
    )
    return a, split["a"], b, split["b"]


def id_on(d: Deployment, name: str, partitions: set[int]) -> str:
    """A workflow id unique to this deployment whose commands land on one of `partitions`."""
    for i in range(10_000):
        wid = d.wid(f"{name}-{i}")
        if partition_for(wid.encode(), d.config.partitions) in partitions:
            return wid
    raise AssertionError(f"no id for {name} lands on partitions {sorted(partitions)}")


def row(d: Deployment, workflow_id: str) -> dict[str, Any] | None:
    """The workflow's read-model row."""
    return asyncio.run(queries.get_workflow(d.config.database_url, workflow_id))
