"""The Python client (sagaflow.clients) against a running orchestrator and worker, on real
Kafka and Postgres: start -> result (sync and asyncio), typed dataclass and pydantic payloads
round-tripping through workflow and activity, a failure raised with its cause chain, signal,
cancel, terminate, an execution timeout, describe, history, a start refused for its input, and
list_workflows with filters and paging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sagaflow.clients import (
    AsyncClient,
    Client,
    InputError,
    WorkflowCancelledError,
    WorkflowDescription,
    WorkflowFailureError,
    WorkflowNotFoundError,
    WorkflowResultTimeoutError,
    WorkflowStartRejectedError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)
from sagaflow.config import Config
from sagaflow.core.errors import ActivityError, ApplicationError
from sagaflow.core.messages import (
    ActivityCompleted,
    ActivityScheduled,
    SignalReceived,
    WorkflowCompleted,
    WorkflowStarted,
)
from sagaflow.kafka.admin import create_topics
from tests.integration.client_app import Charged, Greeting, Payment, Shouted, registry
from tests.services import Service, config_of, orchestrator, service_env, worker
from tests.support import assert_eventually, unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

APP = "tests.integration.client_app:registry"


@dataclass
class Deployed:
    config: Config
    services: list[Service]
    prefix: str

    def wid(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} (alive={s.alive()})\n{s.tail()}" for s in self.services)


@pytest.fixture(scope="module")
def deployed(kafka_bootstrap: str, database_url: str) -> Iterator[Deployed]:
    from sagaflow.db.migrate import migrate

    prefix = unique_prefix("pyclient")
    env = service_env(kafka_bootstrap, database_url, prefix, SAGAFLOW_APP=APP)
    config = config_of(env)
    create_topics(config, ["client-tests"])
    asyncio.run(migrate(database_url))
    services = [orchestrator("orchestrator", env).start(), worker("worker", env).start()]
    try:
        yield Deployed(config, services, prefix.strip(".").split(".")[-1])
    finally:
        for s in services:
            s.kill()


def describe_eventually(client: Client, workflow_id: str, status: str) -> WorkflowDescription:
    """The read model's view once the projector has caught up to `status`."""

    def seen() -> WorkflowDescription | None:
        try:
            d = client.get_workflow_handle(workflow_id).describe()
        except WorkflowNotFoundError:
            return None
        return d if d.status == status else None

    found: WorkflowDescription = assert_eventually(
        seen, timeout=30, message=f"{workflow_id} {status} in the read model"
    )
    return found


def test_a_dataclass_input_and_result_round_trip_sync(deployed: Deployed) -> None:
    client = Client(deployed.config)
    handle = client.start_workflow(
        "greet", Greeting("ann", 2), id=deployed.wid("greet"), result_type=Shouted
    )
    try:
        result = handle.result(timeout=60)
    except WorkflowResultTimeoutError as exc:
        raise AssertionError(f"{exc}\n{deployed.logs()}") from exc
    assert result == Shouted("HELLO ANN HELLO ANN", 19)
    # Without a type the result is the plain JSON the engine recorded.
    assert handle.result(timeout=10, type=dict) == {"text": "HELLO ANN HELLO ANN", "length": 19}

    # Starting the same workflow again is the same command: the same handle, the same result.
    again = client.start_workflow("greet", Greeting("ann", 2), id=deployed.wid("greet"))
    assert again.result(timeout=30, type=Shouted) == result

    history = handle.history()
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    kinds = [type(e.body) for e in history]
    assert kinds[0] is WorkflowStarted and kinds[-1] is WorkflowCompleted
    assert ActivityScheduled in kinds and ActivityCompleted in kinds

    described = describe_eventually(client, handle.workflow_id, "completed")
    assert (described.workflow_type, described.version) == ("greet", 1)
    assert described.input == {"name": "ann", "times": 2}
    assert described.result_as(Shouted) == result


def test_a_pydantic_input_and_result_round_trip_async(deployed: Deployed) -> None:
    async def body() -> Charged:
        client = AsyncClient(deployed.config)
        payment = Payment(order_id="o-7", amount_cents=1250)
        handle = await client.start_workflow(
            "pay", payment, id=deployed.wid("pay"), result_type=Charged
        )
        result: Charged = await handle.result(timeout=60)
        history = await handle.history()
        assert isinstance(history[-1].body, WorkflowCompleted)
        return result

    assert asyncio.run(body()) == Charged(order_id="o-7", charged_cents=1250, by="card")


def test_a_failed_workflow_raises_with_its_cause_chain(deployed: Deployed) -> None:
    handle = Client(deployed.config).start_workflow("doomed", "sku-9", id=deployed.wid("doomed"))
    with pytest.raises(WorkflowFailureError) as info:
        handle.result(timeout=60)
    failure = info.value
    assert failure.error_type == "ActivityError"
    activity = failure.__cause__
    assert isinstance(activity, ActivityError)
    assert (activity.activity_name, activity.cause_type) == ("reserve", "OutOfStock")
    cause = activity.__cause__
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.message, cause.details) == (
        "OutOfStock",
        "sku-9 is out of stock",
        {"sku": "sku-9"},
    )


def test_signal_then_result_async(deployed: Deployed) -> None:
    async def body() -> object:
        client = AsyncClient(deployed.config)
        handle = await client.start_workflow("approval", "o-1", id=deployed.wid("approve"))
        await handle.signal("decision", {"approved": True})
        result = await handle.result(timeout=60)
        history = await client.get_workflow_handle(handle.workflow_id).history()
        assert any(isinstance(e.body, SignalReceived) for e in history)
        return result

    assert asyncio.run(body()) == {"order_id": "o-1", "decision": {"approved": True}}


def test_cancel_raises_cancelled_and_a_short_wait_times_out_clearly(deployed: Deployed) -> None:
    client = Client(deployed.config)
    handle = client.start_workflow("approval", "o-2", id=deployed.wid("cancel"))
    with pytest.raises(WorkflowResultTimeoutError, match="did not close within 1s") as info:
        handle.result(timeout=1)
    assert isinstance(info.value, TimeoutError)
    handle.cancel("customer changed their mind")
    with pytest.raises(WorkflowCancelledError, match="customer changed their mind"):
        handle.result(timeout=60)
    assert describe_eventually(client, handle.workflow_id, "cancelled").status == "cancelled"


def test_terminate_and_an_execution_timeout_end_result_with_their_errors(
    deployed: Deployed,
) -> None:
    async def body() -> None:
        client = AsyncClient(deployed.config)
        handle = await client.start_workflow("approval", "o-4", id=deployed.wid("terminate"))
        await handle.terminate("stuck on a bad approval", by="ops@example.com")
        with pytest.raises(WorkflowTerminatedError) as info:
            await handle.result(timeout=60)
        assert (info.value.reason, info.value.by) == ("stuck on a bad approval", "ops@example.com")

    asyncio.run(body())
    handle = Client(deployed.config).start_workflow(
        "approval", "o-5", id=deployed.wid("times-out"), execution_timeout=timedelta(seconds=1)
    )
    with pytest.raises(WorkflowTimedOutError) as timed_out:
        handle.result(timeout=60)
    assert timed_out.value.timeout == "execution"


def test_a_bad_input_is_refused_naming_the_field(deployed: Deployed) -> None:
    # Checked by the engine: the start is refused and result() says why.
    client = Client(deployed.config)
    handle = client.start_workflow(
        "pay", {"order_id": "o-3", "amount_cents": "12"}, id=deployed.wid("bad")
    )
    with pytest.raises(WorkflowStartRejectedError) as info:
        handle.result(timeout=60)
    assert (info.value.reason, info.value.field) == ("invalid_input", "input.amount_cents")
    # Another start under an id that is taken raises its own rejection, not the result of the
    # workflow that holds the id (which comes first in the log).
    taken = client.start_workflow("greet", Greeting("bo"), id=deployed.wid("taken"))
    assert taken.result(timeout=60, type=Shouted).text == "HELLO BO"
    other = client.start_workflow("greet", Greeting("cy"), id=deployed.wid("taken"))
    with pytest.raises(WorkflowStartRejectedError) as duplicate:
        other.result(timeout=60)
    assert duplicate.value.reason == "duplicate_workflow_id"
    # Checked before sending, when the client has the app's registry.
    local = Client(deployed.config, registry=registry)
    with pytest.raises(InputError) as local_info:
        local.start_workflow("greet", {"name": "x", "tiems": 2}, id=deployed.wid("bad2"))
    assert local_info.value.field == "input.tiems"
    assert "times" in str(local_info.value)


def test_list_workflows_filters_and_pages(deployed: Deployed) -> None:
    client = Client(deployed.config)
    prefix = deployed.wid("many-")
    before = datetime.now(UTC) - timedelta(seconds=5)
    handles = [
        client.start_workflow("greet", Greeting(f"n{i}"), id=f"{prefix}{i}") for i in range(5)
    ]
    for h in handles:
        h.result(timeout=60)

    def all_listed() -> list[str] | None:
        ids = [
            w.workflow_id
            for page in client.list_workflows(id_prefix=prefix, status="completed")
            for w in page.workflows
        ]
        return ids if len(ids) == 5 else None

    assert_eventually(all_listed, timeout=30, message="5 completed workflows listed")
    pages = list(client.list_workflows(id_prefix=prefix, workflow_type="greet", page_size=2))
    assert [len(p.workflows) for p in pages] == [2, 2, 1]
    assert pages[-1].next_cursor is None
    listed = [w.workflow_id for p in pages for w in p.workflows]
    assert sorted(listed) == sorted(h.workflow_id for h in handles)
    assert len(set(listed)) == 5
    # Each filter narrows: another type, another version, a time range, a status.
    assert _count(client, id_prefix=prefix, workflow_type="pay") == 0
    assert _count(client, id_prefix=prefix, version=2) == 0
    assert _count(client, id_prefix=prefix, version=1, created_from=before) == 5
    assert _count(client, id_prefix=prefix, created_to=before) == 0
    assert _count(client, id_prefix=prefix, status="running") == 0
    # Starting from a cursor continues where a page ended.
    rest = list(client.list_workflows(id_prefix=prefix, page_size=2, cursor=pages[0].next_cursor))
    assert [w.workflow_id for p in rest for w in p.workflows] == listed[2:]

    async def async_pages() -> list[int]:
        aclient = AsyncClient(deployed.config)
        return [
            len(page.workflows)
            async for page in aclient.list_workflows(id_prefix=prefix, page_size=3)
        ]

    assert asyncio.run(async_pages()) == [3, 2]


def _count(client: Client, **filters: object) -> int:
    return sum(len(p.workflows) for p in client.list_workflows(**filters))  # type: ignore[arg-type]


def test_describe_of_an_unknown_workflow_says_so(deployed: Deployed) -> None:
    started = time.monotonic()
    with pytest.raises(WorkflowNotFoundError, match="no workflow"):
        Client(deployed.config).get_workflow_handle(deployed.wid("nobody")).describe()
    assert time.monotonic() - started < 10
