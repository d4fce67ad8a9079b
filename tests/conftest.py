"""Real services for the tests that ask for them, and a time bound on every service test.

Session fixtures: `kafka_bootstrap`, `database_url`, `otlp_endpoint`, `jaeger_query_url`
(all `str`). Kafka and Postgres are resolved, in order, from:

1. the container tier, when SAGAFLOW_TEST_SERVICES=containers (`make test-containers`, and
   the container part of `make test`): testcontainers containers of the images
   `sagaflow.devstack.container_images` builds, on the host network of the project's own
   Docker engine (started when none answers, and then stopped at the end of the session);
2. the environment: SAGAFLOW_KAFKA_BOOTSTRAP, SAGAFLOW_DATABASE_URL;
3. the local stack (`python -m sagaflow.devstack`): reused when already running and left
   running; started otherwise, and then stopped at the end of the session.

Jaeger comes from OTEL_EXPORTER_OTLP_ENDPOINT (+ SAGAFLOW_JAEGER_QUERY_URL) or the local stack.
Tests marked `containers` need the container tier and are skipped outside it.

Nothing is started unless a test requests the fixture, so `pytest -m unit` needs no service.
Every test is bounded by pytest-timeout (pyproject's `timeout`; `@pytest.mark.timeout(s)` per
test); fixture start-up has its own deadlines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sagaflow.devstack import Stack
from tests.container_tier import ContainerTier

CONTAINER_TIER = os.environ.get("SAGAFLOW_TEST_SERVICES", "local") == "containers"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CONTAINER_TIER:
        return
    skip = pytest.mark.skip(reason="needs the container tier: make test-containers")
    for item in items:
        if item.get_closest_marker("containers"):
            item.add_marker(skip)


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
def container_tier() -> Iterator[ContainerTier]:
    """The project's Docker engine with the tier's images built (SAGAFLOW_TEST_SERVICES=
    containers only)."""
    if not CONTAINER_TIER:
        pytest.fail("container_tier needs SAGAFLOW_TEST_SERVICES=containers (make test-containers)")
    tier = ContainerTier()
    try:
        yield tier
    finally:
        tier.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """Kafka bootstrap servers ("host:port") of a broker where transactions work."""
    if CONTAINER_TIER:
        tier: ContainerTier = request.getfixturevalue("container_tier")
        return tier.kafka()
    from_env = os.environ.get("SAGAFLOW_KAFKA_BOOTSTRAP")
    if from_env:
        return from_env
    return str(request.getfixturevalue("_local_stack").ensure("kafka").kafka_bootstrap)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    """A libpq URL (postgresql://user:password@host:port/db) of a database the tests own."""
    if CONTAINER_TIER:
        tier: ContainerTier = request.getfixturevalue("container_tier")
        return tier.postgres()
    from_env = os.environ.get("SAGAFLOW_DATABASE_URL")
    if from_env:
        return from_env
    return str(request.getfixturevalue("_local_stack").ensure("postgres").database_url)


@pytest.fixture(scope="session")
def _jaeger(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(OTLP HTTP base URL, query base URL or None when the environment gives only OTLP)."""
    from_env = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if from_env:
        return from_env.rstrip("/"), os.environ.get("SAGAFLOW_JAEGER_QUERY_URL") or None
    stack = request.getfixturevalue("_local_stack").ensure("jaeger")
    return stack.otlp_http_url, stack.jaeger_query_url


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
