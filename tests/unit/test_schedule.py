"""Schedules on virtual time: firing, overlap policies, catch-up after downtime, pause, resume
and delete (the built-in `sagaflow.schedule` workflow and its children)."""

from __future__ import annotations

from typing import Any

import pytest

from sagaflow import schedule
from sagaflow.core import messages as m
from sagaflow.testing import WorkflowEnvironment
from sagaflow.workflow import Registry, WorkflowContext

pytestmark = pytest.mark.unit

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a multiple of every interval used here


def make_env() -> WorkflowEnvironment:
    registry = Registry()

    @registry.workflow(name="tick", version=1)
    async def tick(ctx: WorkflowContext, arg: Any) -> Any:
        if arg == "slow":
            return await ctx.wait_for_signal("done")
        return arg

    schedule.register(registry)
    return WorkflowEnvironment(registry, start_ms=START)


def create(env: WorkflowEnvironment, name: str = "s", **spec: Any) -> str:
    wid = schedule.schedule_id(name)
    body = {"name": name, "workflow_type": "tick", "interval_s": 10, **spec}
    env.start(schedule.SCHEDULE_TYPE, body, workflow_id=wid)
    env.run(advance_time=False)
    return wid


def children(env: WorkflowEnvironment, wid: str) -> list[str]:
    return [
        e.body.child_workflow_id
        for e in env.events
        if e.workflow_id == wid and isinstance(e.body, m.ChildWorkflowStarted)
    ]


def control(env: WorkflowEnvironment, wid: str, action: str) -> None:
    env.signal(wid, schedule.CONTROL_SIGNAL, {"action": action})
    env.run(advance_time=False)


def test_a_schedule_starts_its_workflow_at_every_fire_time() -> None:
    env = make_env()
    wid = create(env, input="hello")
    for _ in range(3):
        env.advance(10)
        env.run(advance_time=False)  # each child completes before the next fire time
    assert children(env, wid) == [
        "schedule:s/20260101T000010.000000Z",
        "schedule:s/20260101T000020.000000Z",
        "schedule:s/20260101T000030.000000Z",
    ]
    assert all(env.result(c) == "hello" for c in children(env, wid))
    started = next(e.body for e in env.events if e.workflow_id == wid)
    assert isinstance(started, m.WorkflowStarted)


@pytest.mark.parametrize(
    ("overlap", "expected"),
    [("skip", 1), ("buffer_one", 2), ("allow_all", 3)],
)
def test_overlap_policies(overlap: str, expected: int) -> None:
    env = make_env()
    wid = create(env, input="slow", overlap=overlap)
    env.advance(35)  # fires at 10, 20, 30 while the first child still runs
    env.run(advance_time=False)
    first = "schedule:s/20260101T000010.000000Z"
    assert len(children(env, wid)) == (1 if overlap != "allow_all" else 3)
    env.signal(first, "done", 1)
    env.run(advance_time=False)
    assert len(children(env, wid)) == expected
    if overlap == "buffer_one":
        # The held-back fire (at 20 s) starts when the first child closes, not at the next tick.
        assert children(env, wid)[1] == "schedule:s/20260101T000020.000000Z"


def test_missed_fire_times_are_caught_up_within_the_window() -> None:
    env = make_env()
    wid = create(env, overlap="allow_all", catchup_window_s=25)
    # Downtime: nothing fires for 60 s, then the timer fires late.
    env.now_ms += 60_000
    env.advance(0)
    env.run(advance_time=False)
    # Fire times 10..60; those older than 60 - 25 = 35 s are missed, the rest start now.
    assert children(env, wid) == [
        "schedule:s/20260101T000040.000000Z",
        "schedule:s/20260101T000050.000000Z",
        "schedule:s/20260101T000100.000000Z",
    ]


def test_pause_resume_and_delete() -> None:
    env = make_env()
    wid = create(env)
    env.advance(15)
    control(env, wid, "pause")
    env.advance(60)
    env.run(advance_time=False)
    assert len(children(env, wid)) == 1  # nothing fires while paused
    paused = [e.body for e in env.events if e.workflow_id == wid]
    assert any(isinstance(b, m.WorkflowContinuedAsNew) for b in paused)
    control(env, wid, "resume")
    env.advance(10)
    env.run(advance_time=False)
    assert len(children(env, wid)) == 2  # fire times passed while paused are not caught up
    control(env, wid, "delete")
    assert env.status(wid) == "completed"
    assert env.result(wid)["deleted"] is True


def test_a_bad_spec_fails_the_schedule_naming_the_field() -> None:
    env = make_env()
    env.start(
        schedule.SCHEDULE_TYPE,
        {"name": "s", "workflow_type": "tick", "interval_s": 0},
        workflow_id="schedule:s",
    )
    env.run(advance_time=False)
    assert "interval_s" in env.failure("schedule:s").message
