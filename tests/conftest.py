"""Real services for the tests that ask for them, and a time bound on every service test.

Session fixtures: `kafka_bootstrap`, `database_url`, `otlp_endpoint`, `jaeger_query_url`
(all `str`). Each service is resolved, in order, from:

1. testcontainers, when a Docker engine answers (the container constructor raises
   `docker.errors.DockerException` at once when none does);
2. the environment: SAGAFLOW_KAFKA_BOOTSTRAP, SAGAFLOW_DATABASE_URL,
   OTEL_EXPORTER_OTLP_ENDPOINT (+ SAGAFLOW_JAEGER_QUERY_URL);
3. the local stack (`python -m sagaflow.devstack`): reused when already running and left
   running; started otherwise, and then stopped at the end of the session.

Nothing is started unless a test requests the fixture, so `pytest -m unit` needs no service.
Every test is bounded by pytest-timeout (pyproject's `timeout`; `@pytest.mark.timeout(s)` per
test); fixture start-up has its own deadlines.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from docker.errors import DockerException  # type: ignore[import-untyped]

from sagaflow.devstack import Stack
from tests.support import assert_eventually

C = TypeVar("C")

_JAEGER_IMAGE = "jaegertracing/jaeger:2.13.0"  # the same source as the local build (v1.76.0)
_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
_POSTGRES_IMAGE = "postgres:16-alpine"


def _container(factory: Callable[[], C]) -> C | None:
    """The container, or None when no Docker engine answers."""
    try:
        return factory()
    except DockerException:
        return None


class _LocalStack:
    """Starts local-stack services on demand; stops at the end only what it started."""

    def __init__(self) -> None:
        self.stack = Stack()
        self.started: list[str] = []

    def ensure(self, name: str) -> Stack:
        self.started += self.stack.up([name])
        return self.stack

    def close(self) -> None:
        if self.started:
            self.stack.down(self.started)


@pytest.fixture(scope="session")
def _local_stack() -> Iterator[_LocalStack]:
    local = _LocalStack()
    try:
        yield local
    finally:
        local.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """Kafka bootstrap servers ("host:port") of a broker where transactions work."""

    def make() -> Any:
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer(_KAFKA_IMAGE)
        # KafkaContainer leaves the transaction log at replication factor 3; on its single
        # broker init_transactions() would then time out.
        for key, value in {
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        }.items():
            container.with_env(key, value)
        return container

    container = _container(make)
    if container is not None:
        with container:
            yield str(container.get_bootstrap_server())
        return
    from_env = os.environ.get("SAGAFLOW_KAFKA_BOOTSTRAP")
    if from_env:
        yield from_env
        return
    yield request.getfixturevalue("_local_stack").ensure("kafka").kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A libpq URL (postgresql://user:password@host:port/db) of a database the tests own."""

    def make() -> Any:
        from testcontainers.community.postgres import PostgresContainer

        return PostgresContainer(
            _POSTGRES_IMAGE,
            username="sagaflow",
            password="sagaflow",
            dbname="sagaflow",
            driver=None,
        )

    container = _container(make)
    if container is not None:
        with container:
            yield str(container.get_connection_url())
        return
    from_env = os.environ.get("SAGAFLOW_DATABASE_URL")
    if from_env:
        yield from_env
        return
    yield request.getfixturevalue("_local_stack").ensure("postgres").database_url


def _jaeger_answers(query_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{query_url}/api/services", timeout=2) as response:
            return "data" in json.load(response)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def _jaeger(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    """(OTLP HTTP base URL, query base URL or None when the environment gives only OTLP)."""

    def make() -> Any:
        from testcontainers.core.container import DockerContainer

        return DockerContainer(_JAEGER_IMAGE).with_exposed_ports(4318, 16686)

    container = _container(make)
    if container is not None:
        with container:
            host = container.get_container_host_ip()
            otlp = f"http://{host}:{container.get_exposed_port(4318)}"
            query = f"http://{host}:{container.get_exposed_port(16686)}"
            assert_eventually(
                lambda: _jaeger_answers(query), timeout=60, message=f"Jaeger at {query} is up"
            )
            yield otlp, query
        return
    from_env = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if from_env:
        yield from_env.rstrip("/"), os.environ.get("SAGAFLOW_JAEGER_QUERY_URL") or None
        return
    stack = request.getfixturevalue("_local_stack").ensure("jaeger")
    yield stack.otlp_http_url, stack.jaeger_query_url


@pytest.fixture(scope="session")
def otlp_endpoint(_jaeger: tuple[str, str | None]) -> str:
    """OTLP/HTTP base URL (e.g. http://127.0.0.1:4318); traces go to <base>/v1/traces."""
    return _jaeger[0]


@pytest.fixture(scope="session")
def jaeger_query_url(_jaeger: tuple[str, str | None]) -> str:
    """Base URL of Jaeger's query API (e.g. http://127.0.0.1:16686)."""
    if _jaeger[1] is None:
        pytest.fail(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but SAGAFLOW_JAEGER_QUERY_URL is not; set it to "
            "the query URL of the Jaeger those traces reach, or unset both to use the local stack"
        )
    return _jaeger[1]
