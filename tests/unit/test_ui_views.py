"""The UI's pure pieces: the trace waterfall from Jaeger's JSON, the code path graph, the list
filters, and the signal waits a replayed run reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sagaflow.core.driver import Driver
from sagaflow.core.messages import (
    ActivityCompleted,
    ActivityScheduled,
    Event,
    RetryPolicy,
    SignalReceived,
    TimerStarted,
    WorkflowStarted,
)
from sagaflow.core.replay import replay
from sagaflow.examples.checkout import registry
from sagaflow.readmodel.queries import Filters
from sagaflow.testing import history_from_json
from sagaflow.ui.graph import GRAPH_RENDERERS, code_path_svg, render
from sagaflow.ui.logview import graph_steps
from sagaflow.ui.trace import waterfall

pytestmark = pytest.mark.unit

HISTORIES = Path(__file__).parents[1] / "histories"


def _span(
    sid: str, parent: str | None, op: str, pid: str, start: int, dur: int, **tags: Any
) -> Any:
    return {
        "spanID": sid,
        "operationName": op,
        "processID": pid,
        "startTime": start,
        "duration": dur,
        "references": [{"refType": "CHILD_OF", "spanID": parent}] if parent else [],
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }


def test_waterfall_orders_children_under_parents_and_marks_errors() -> None:
    body = {
        "data": [
            {
                "processes": {"p1": {"serviceName": "orch"}, "p2": {"serviceName": "worker"}},
                "spans": [
                    _span("c", "a", "execute charge", "p2", 1_100, 300, error=True),
                    _span("a", None, "start checkout", "p1", 1_000, 100),
                    _span("b", "a", "schedule charge", "p1", 1_050, 10),
                    _span("orphan", "lost", "complete charge", "p1", 1_500, 500),
                ],
            }
        ]
    }
    rows = waterfall(body)
    assert [r.operation for r in rows] == [
        "start checkout",
        "schedule charge",
        "execute charge",
        "complete charge",  # its parent never arrived: shown as a root, not dropped
    ]
    assert [r.depth for r in rows] == [0, 1, 1, 0]
    assert [r.service for r in rows] == ["orch", "orch", "worker", "orch"]
    assert [r.error for r in rows] == [False, False, True, False]
    assert rows[0].offset_pct == 0 and rows[-1].offset_pct + rows[-1].width_pct == 100
    assert ("error", "True") in rows[2].attributes


def test_waterfall_of_nothing_is_empty() -> None:
    assert waterfall({"data": []}) == []
    assert waterfall({}) == []


def _event(seq: int, body: Any, run: str = "r1") -> Event:
    return Event("wf-1", seq, run, 1_000 * seq, body)


def test_graph_shows_the_path_taken_and_the_end() -> None:
    events = [
        _event(1, WorkflowStarted("checkout", 1, b"{}", 7)),
        _event(2, ActivityScheduled(2, "reserve", "inventory", b"{}", RetryPolicy(), 0, 0)),
        _event(3, ActivityCompleted(2, 1, b"{}")),
        _event(4, TimerStarted(4, 9_000)),
        _event(5, SignalReceived("approve", b"true")),
    ]
    steps = graph_steps(events)
    assert [(s["kind"], s["label"], s["state"]) for s in steps] == [
        ("activity", "reserve", "completed"),
        ("timer", "timer 4", "running"),
        ("signal", "signal approve", "completed"),
    ]
    svg = code_path_svg("checkout", steps, {"status": "completed"})
    assert svg.count('<g class="node') == 4 and "completed" in svg
    assert "<script" not in svg


def test_graph_escapes_names_and_has_a_hook_for_state_machines() -> None:
    steps = [{"kind": "activity", "label": "<b>x</b>", "state": "running"}]
    assert "&lt;b&gt;" in code_path_svg("t", steps, {"status": "running"})
    GRAPH_RENDERERS["machine"] = lambda _t, _s, _w: "<svg id='sm'/>"
    try:
        assert render("machine", steps, {}) == "<svg id='sm'/>"
    finally:
        del GRAPH_RENDERERS["machine"]


def test_filters_build_where_clauses_and_escape_like_wildcards() -> None:
    where, params = Filters(status="failed", version=2, id_prefix="a_b%").where()
    assert where == ["status = %s", "version = %s", "workflow_id LIKE %s"]
    assert params == ["failed", 2, "a\\_b\\%%"]
    where, _ = Filters(status="failed").where(with_status=False)
    assert where == []


def test_a_replayed_run_reports_its_signal_wait_and_timeout_timer() -> None:
    recorded = history_from_json((HISTORIES / "checkout_approved.json").read_text())
    # Cut the recorded history just before the approval arrives: the run waits for it.
    cut = next(i for i, e in enumerate(recorded) if isinstance(e.body, SignalReceived))
    waiting = recorded[:cut]
    (timer,) = [e.body for e in waiting if isinstance(e.body, TimerStarted)]
    outcome = replay(registry, waiting)
    assert isinstance(outcome.driver, Driver)
    assert outcome.driver.signal_waits() == [("approve", timer.timer_seq)]
    # Once the signal is in, nothing is awaited any more.
    done = replay(registry, recorded)
    assert done.driver is not None and done.driver.signal_waits() == []
