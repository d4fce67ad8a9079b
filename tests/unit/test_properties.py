"""Property tests: fold == live state, duplicates add nothing, compensations run in reverse,
every message round-trips through its Avro schema."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagaflow import codec
from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.examples.checkout import registry as checkout_registry
from sagaflow.testing import WorkflowEnvironment
from sagaflow.workflow import ApplicationError, Registry, RetryPolicy, WorkflowContext

pytestmark = pytest.mark.unit

RESULTS = {
    "reserve_inventory": {"reservation_id": "res_1"},
    "release_inventory": {"released": True},
    "charge_payment": {"charge_id": "ch_1"},
    "refund_payment": {"refund_id": "re_1"},
    "create_shipment": {"shipment_id": "sh_1"},
    "cancel_shipment": {"cancelled": "sh_1"},
    "send_receipt_email": {"message_id": "msg_1"},
}

action = st.one_of(
    st.tuples(
        st.just("start"),
        st.integers(0, 3),
        st.sampled_from([500, 250_000]),
        st.sampled_from(["tok_visa", "tok_declined"]),
    ),
    st.tuples(st.just("complete"), st.integers(0, 20)),
    st.tuples(st.just("fail"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("signal"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 3)),
    st.tuples(st.just("tick"), st.integers(0, 4_000_000)),
    st.tuples(st.just("repeat"), st.integers(0, 50)),
)


def order(i: int, amount: int, card: str) -> bytes:
    return json.dumps(
        {
            "order_id": f"o{i}",
            "sku": "s",
            "quantity": 1,
            "amount_cents": amount,
            "card": card,
            "address": "a",
            "email": "e",
            "approval_timeout_s": 1000,
        }
    ).encode()


def drive(actions: list[tuple[Any, ...]]) -> tuple[Engine, list[m.Event]]:
    """Run random actions against a live engine; every repeated command must add no event."""
    engine = Engine(checkout_registry)
    now = 1_000
    tasks: list[m.ActivityTask] = []
    sent: list[m.Command] = []
    events: list[m.Event] = []

    def send(command: m.Command) -> None:
        decision = engine.handle(command, now)
        if decision.rejection is None:
            sent.append(command)
        events.extend(e for e in decision.events if e.seq > 0)
        tasks.extend(decision.tasks)

    for kind, *args in actions:
        if kind == "start":
            send(m.StartWorkflow(f"w{args[0]}", "checkout", order(*args), None, f"s{args[0]}"))
        elif kind in ("complete", "fail") and tasks:
            task = tasks.pop(args[0] % len(tasks))
            if kind == "complete":
                result = json.dumps(RESULTS[task.activity_name]).encode()
                send(
                    m.CompleteActivity(
                        task.workflow_id, task.run_id, task.activity_seq, task.attempt, result
                    )
                )
            else:
                send(
                    m.FailActivity(
                        task.workflow_id,
                        task.run_id,
                        task.activity_seq,
                        task.attempt,
                        "Boom",
                        "boom",
                        args[1],
                    )
                )
        elif kind == "signal":
            payload = json.dumps({"approved": args[1]}).encode()
            send(m.SignalWorkflow(f"w{args[0]}", "approve", payload, f"sig{len(sent)}"))
        elif kind == "cancel":
            send(m.CancelWorkflow(f"w{args[0]}", "stop", f"c{len(sent)}"))
        elif kind == "tick":
            now += args[0]
            decision = engine.fire_due(now)
            events.extend(decision.events)
            tasks.extend(decision.tasks)
        elif kind == "repeat" and sent:
            duplicate = sent[args[0] % len(sent)]
            decision = engine.handle(duplicate, now)
            assert [e for e in decision.events if e.seq > 0] == [], duplicate
            assert decision.tasks == ()
    return engine, events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, max_size=60))
def test_fold_of_events_equals_live_state_and_duplicates_add_nothing(
    actions: list[tuple[Any, ...]],
) -> None:
    live, events = drive(actions)
    rebuilt = Engine(checkout_registry)
    for event in events:
        rebuilt.restore(event)
    assert rebuilt.open_workflow_ids() == live.open_workflow_ids()
    for workflow_id in {e.workflow_id for e in events}:
        assert rebuilt.status(workflow_id) == live.status(workflow_id)
        assert rebuilt.state(workflow_id) == live.state(workflow_id)
    assert rebuilt.next_due_ms() == live.next_due_ms()
    for workflow_id in live.open_workflow_ids():
        history = live.history(workflow_id)
        assert [e.seq for e in history] == list(range(history[0].seq, history[-1].seq + 1))


def saga_registry(steps: int, fail_at: int) -> Registry:
    registry = Registry()

    @registry.activity(name="step", task_queue="q")
    def step(ctx: Any, i: int) -> int:
        if i == fail_at:
            raise ApplicationError(f"step {i} failed", non_retryable=True)
        return i

    @registry.activity(name="undo", task_queue="q", retry_policy=RetryPolicy(maximum_attempts=1))
    def undo(ctx: Any, i: int) -> int:
        return i

    @registry.workflow(name="saga", version=1)
    async def saga(ctx: WorkflowContext, cancel_at: int) -> Any:
        async with ctx.saga() as s:
            for i in range(steps):
                if i == cancel_at:
                    await ctx.wait_for_signal("never")
                done = await ctx.execute_activity("step", i)
                s.add_compensation("undo", done)
        return "done"

    return registry


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.data())
def test_compensations_run_in_reverse_order_of_completed_steps(steps: int, data: Any) -> None:
    fail_at = data.draw(st.integers(0, steps))  # == steps: no failure
    cancel_at = data.draw(st.integers(0, steps))
    with WorkflowEnvironment(saga_registry(steps, fail_at)) as env:
        env.start("saga", cancel_at, workflow_id="s")
        env.run(advance_time=False)
        if env.status("s") == "running":
            env.cancel("s")
            env.run()
        completed = [
            json.loads(e.body.result)
            for e in env.history("s")
            if isinstance(e.body, m.ActivityCompleted)
        ]
        undo_inputs = [json.loads(t.input) for t in env.executed if t.activity_name == "undo"]
        steps_done = [c for c in completed[: len(completed) - len(undo_inputs)]]
        if env.status("s") == "completed":
            assert undo_inputs == []
        else:
            assert env.status("s") in ("failed", "cancelled")
            assert undo_inputs == list(reversed(steps_done))
            assert steps_done == list(range(min(fail_at, cancel_at, steps)))


# --------------------------------------------------------------------------- codec round trip

LONG = st.integers(-(2**63), 2**63 - 1)


def strategy_for(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is str:
            fields[f.name] = st.text(max_size=20)
        elif hint is int:
            fields[f.name] = LONG
        elif hint is bool:
            fields[f.name] = st.booleans()
        elif hint is bytes:
            fields[f.name] = st.binary(max_size=40)
        elif hint is float:
            fields[f.name] = st.floats(allow_nan=False)
        elif hint == tuple[str, ...]:
            fields[f.name] = st.lists(st.text(max_size=8), max_size=3).map(tuple)
        elif hint == (int | None):
            fields[f.name] = st.none() | LONG
        elif hint is m.RetryPolicy:
            fields[f.name] = strategy_for(m.RetryPolicy)
        else:  # pragma: no cover - a new field type needs a strategy here
            raise AssertionError(f"no strategy for {cls.__name__}.{f.name}: {hint}")
    return st.builds(cls, **fields)


COMMANDS = st.one_of(*(strategy_for(c) for c in typing.get_args(m.Command)))
BODIES = st.one_of(*(strategy_for(c) for c in typing.get_args(m.EventBody)))
EVENTS = st.builds(
    m.Event,
    workflow_id=st.text(max_size=20),
    seq=LONG,
    run_id=st.text(max_size=32),
    recorded_at_ms=LONG,
    body=BODIES,
)


@settings(max_examples=300, deadline=None)
@given(COMMANDS)
def test_every_command_round_trips(command: m.Command) -> None:
    assert codec.decode_command(codec.encode_command(command)) == command


@settings(max_examples=500, deadline=None)
@given(EVENTS)
def test_every_event_round_trips(event: m.Event) -> None:
    assert codec.decode_event(codec.encode_event(event)) == event


@settings(max_examples=100, deadline=None)
@given(strategy_for(m.ActivityTask))
def test_every_task_round_trips(task: m.ActivityTask) -> None:
    assert codec.decode_task(codec.encode_task(task)) == task


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.binary(max_size=30), st.integers(0, 200))
def test_corrupt_bytes_raise_decode_error_only(event: m.Event, junk: bytes, cut: int) -> None:
    good = codec.encode_event(event)
    for data in (junk, good[:cut], good[:3] + junk, good + junk[:1], bytes([0xF1, 2]) + junk):
        if data == good:
            continue
        try:
            decoded = codec.decode_event(data)
        except codec.DecodeError:
            continue
        assert isinstance(decoded, m.Event)  # some junk is a valid record; never another error
