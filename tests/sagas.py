"""A sagaflow deployment for tests: topics under a unique prefix, migrated Postgres, and the
orchestrator/worker processes, all on the real services the fixtures provide."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from sagaflow.client import Client, wait_closed
from sagaflow.config import Config
from sagaflow.core.messages import Event, WorkflowCompleted, WorkflowFailed
from sagaflow.kafka.admin import create_topics
from tests.services import Service, config_of, orchestrator, service_env, worker
from tests.support import unique_prefix

QUEUES = ("inventory", "payments", "shipping", "email")


@dataclass
class Deployment:
    env: dict[str, str]
    config: Config
    services: list[Service] = field(default_factory=list)

    def orchestrator(
        self, name: str = "orchestrator", instance: str = "0", **extra: str
    ) -> Service:
        svc = orchestrator(name, {**self.env, **extra}, instance).start()
        self.services.append(svc)
        return svc

    def worker(self, name: str = "worker", **extra: str) -> Service:
        svc = worker(name, self.env, **extra).start()
        self.services.append(svc)
        return svc

    def wid(self, name: str) -> str:
        """A workflow (and order) id unique to this deployment: Postgres outlives test runs,
        and a reused id would find its steps already done in the idempotency table."""
        return f"{self.config.topics.prefix.strip('.').split('.')[-1]}-{name}"

    def client(self) -> Client:
        return Client(self.config)

    def wait_closed(self, ids: list[str], timeout_s: float = 90) -> dict[str, Event]:
        try:
            return wait_closed(self.config, ids, timeout_s)
        except TimeoutError as exc:
            logs = "\n".join(f"--- {s.name} (alive={s.alive()})\n{s.tail()}" for s in self.services)
            raise AssertionError(f"{exc}\n{logs}") from exc

    def ledger(self, order_ids: list[str]) -> list[dict[str, Any]]:
        from sagaflow.examples import shop_pg

        async def read() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            for oid in order_ids:
                rows += await shop_pg.ledger(self.config.database_url, oid)
            return rows

        return asyncio.run(read())

    def assert_outcomes(
        self, ids: list[str], compensated: set[str], closed: dict[str, Event]
    ) -> None:
        """Every compensated order failed with one charge and one refund; every other one
        completed with one charge and nothing else."""
        failed = {w for w, e in closed.items() if isinstance(e.body, WorkflowFailed)}
        completed = {w for w, e in closed.items() if isinstance(e.body, WorkflowCompleted)}
        assert failed == compensated
        assert completed == set(ids) - compensated
        ledger = self.ledger(ids)
        for w in ids:
            kinds = sorted(r["kind"] for r in ledger if r["order_id"] == w)
            assert kinds == (["charge", "refund"] if w in compensated else ["charge"]), w

    def assignments(self) -> dict[str, set[int]]:
        """{group member id: owned commands partitions}, from the broker's view."""
        admin = AdminClient(dict(self.config.kafka_common()))
        group = self.config.orchestrator_group
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        return {
            m.member_id: {tp.partition for tp in m.assignment.topic_partitions}
            for m in desc.members
        }

    def stop(self) -> None:
        for s in self.services:
            s.kill()


def order(order_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "sku": "sku-test",
        "quantity": 1,
        "amount_cents": 1_000,
        "card": "tok_visa",
        "address": "1 Test Road",
        "email": "t@example.com",
        **overrides,
    }


def prepare(
    kafka_bootstrap: str, database_url: str, label: str, partitions: int = 3, **extra: str
) -> Deployment:
    from sagaflow.db.migrate import migrate
    from sagaflow.examples import shop_pg

    env = service_env(
        kafka_bootstrap,
        database_url,
        unique_prefix(label),
        SAGAFLOW_PARTITIONS=str(partitions),
        **extra,
    )
    config = config_of(env)
    create_topics(config, QUEUES)

    async def db() -> None:
        await migrate(database_url)
        await shop_pg.seed_stock(database_url, {"sku-test": 1_000_000})

    asyncio.run(db())
    return Deployment(env, config)


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest, kafka_bootstrap: str, database_url: str
) -> Iterator[Deployment]:
    d = prepare(kafka_bootstrap, database_url, request.node.name)
    try:
        yield d
    finally:
        d.stop()
