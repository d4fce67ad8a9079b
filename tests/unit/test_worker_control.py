"""The worker's side of heartbeats and cancellation, on a real asyncio loop without Kafka:
heartbeats throttled to a third of the timeout (the latest details win), a silent attempt given
up, a cancelled async activity stopped at its await, a cancelled sync one stopping itself."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sagaflow.config import Config
from sagaflow.core import messages as m
from sagaflow.core.registry import ActivityContext, ActivityDefinition, ActivityOptions
from sagaflow_worker.control import AttemptControl, CancelWatch, run_attempt
from sagaflow_worker.idempotency import Failed, Succeeded

pytestmark = pytest.mark.unit


def task(heartbeat_timeout_ms: int) -> m.ActivityTask:
    return m.ActivityTask(
        "wf", "r", "t", 2, 1, "a", "q", b"null", "wf/2", 0, 0, heartbeat_timeout_ms
    )


async def attempt(fn: Any, control: AttemptControl, timeout_s: float | None = 5.0) -> Any:
    definition = ActivityDefinition("a", "q", fn, ActivityOptions())
    ctx = ActivityContext("wf", "r", 2, 1, "a", "wf/2", control=control)
    with ThreadPoolExecutor(1) as pool:
        run = run_attempt(definition, ctx, control, pool, timeout_s, None)
        return await asyncio.wait_for(run, 10)


def test_heartbeats_go_out_at_most_once_per_third_of_the_timeout_with_the_latest_details() -> None:
    sent: list[m.HeartbeatActivity] = []
    elapsed: list[float] = []

    async def scenario() -> None:
        began = asyncio.get_running_loop().time()
        control = AttemptControl(task(600), asyncio.get_running_loop(), sent.append)
        assert control.interval_s == pytest.approx(0.2)
        for i in range(30):  # 30 calls over ~0.3 s
            control.heartbeat(i)
            await asyncio.sleep(0.01)  # the activity's pace, not synchronisation
        deadline = asyncio.get_running_loop().time() + 2
        while sent[-1].details != b"29" and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)  # polling for the trailing heartbeat, bounded
        control.close()
        elapsed.append(asyncio.get_running_loop().time() - began)

    asyncio.run(scenario())
    # One at once, then at most one per 0.2 s interval: never one per call (30 calls).
    assert 2 <= len(sent) <= 1 + elapsed[0] / 0.2 + 1e-9, ([s.details for s in sent], elapsed)
    assert len(sent) < 10
    assert sent[0].details == b"0"
    assert sent[-1].details == b"29", "the last progress goes out at the end of its interval"
    assert {(s.workflow_id, s.activity_seq, s.attempt) for s in sent} == {("wf", 2, 1)}


def test_an_attempt_silent_for_its_heartbeat_timeout_is_given_up_and_retryable() -> None:
    async def stuck(ctx: ActivityContext, arg: Any) -> Any:
        ctx.heartbeat("started")
        await asyncio.sleep(60)

    async def scenario() -> Any:
        control = AttemptControl(task(300), asyncio.get_running_loop(), lambda c: None)
        return await attempt(stuck, control)

    outcome = asyncio.run(scenario())
    assert isinstance(outcome, Failed)
    assert (outcome.error_type, outcome.retryable) == ("HeartbeatTimeout", True)


def test_a_cancelled_async_activity_stops_at_its_await() -> None:
    stopped = threading.Event()

    async def forever(ctx: ActivityContext, arg: Any) -> Any:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()

    async def scenario() -> Any:
        control = AttemptControl(task(0), asyncio.get_running_loop(), lambda c: None)
        asyncio.get_running_loop().call_later(0.05, control.cancel)
        return await attempt(forever, control)

    outcome = asyncio.run(scenario())
    assert stopped.is_set()
    assert outcome == Failed("ActivityCancelled", "cancelled by its workflow while it ran", False)


def test_a_cancelled_sync_activity_sees_its_signal_and_stops_itself() -> None:
    def polling(ctx: ActivityContext, arg: Any) -> Any:
        for _ in range(1000):
            ctx.raise_if_cancelled()
            threading.Event().wait(0.01)  # the activity's own work
        return "not cancelled"

    async def scenario() -> Any:
        control = AttemptControl(task(0), asyncio.get_running_loop(), lambda c: None)
        threading.Timer(0.05, control.cancel).start()  # the watch's thread
        return await attempt(polling, control)

    outcome = asyncio.run(scenario())
    assert isinstance(outcome, Failed)
    assert (outcome.error_type, outcome.retryable) == ("ActivityCancelled", False)


def test_a_step_cancelled_before_it_started_does_not_run() -> None:
    ran: list[int] = []
    watch = CancelWatch(Config.from_env({}))
    watch.apply("wf/2", b"notice")

    async def scenario() -> Any:
        control = AttemptControl(task(0), asyncio.get_running_loop(), lambda c: None)
        watch.listen("wf/2", control.cancel)
        return await attempt(lambda ctx, arg: ran.append(1), control)

    outcome = asyncio.run(scenario())
    assert ran == []
    assert isinstance(outcome, Failed) and outcome.error_type == "ActivityCancelled"
    watch.apply("wf/2", None)  # the tombstone
    assert not watch.is_cancelled("wf/2")


def test_an_attempt_that_finishes_reports_its_result() -> None:
    async def scenario() -> Any:
        control = AttemptControl(task(1000), asyncio.get_running_loop(), lambda c: None)
        return await attempt(lambda ctx, arg: {"ok": True}, control)

    assert asyncio.run(scenario()) == Succeeded(b'{"ok":true}')
