"""Where the workflow page's signal waits come from: the read model's record of them, and for a
run recorded before the engine recorded waits, a replay of the run with the registered code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sagaflow.core.messages import Event, SignalReceived, SignalWaitStarted, TimerStarted
from sagaflow.examples.checkout import registry
from sagaflow.testing import history_from_json
from sagaflow.ui.logview import LogView, find_signal_waits

pytestmark = pytest.mark.unit

HISTORIES = Path(__file__).parents[1] / "histories"


def _waiting() -> LogView:
    """The checkout saga waiting for its approval, as recorded before waits were events."""
    recorded = history_from_json((HISTORIES / "checkout_approved.json").read_text())
    cut = next(i for i, e in enumerate(recorded) if isinstance(e.body, SignalReceived))
    return LogView(events=recorded[:cut])


def test_the_read_models_waits_are_used_as_recorded() -> None:
    view = _waiting()
    recorded = [{"name": "approve", "seq": 9, "since_ms": 1, "timer_seq": 7,
                 "timeout_at_ms": 5_000, "description": "waiting for signal approve"}]  # fmt: skip
    find_signal_waits(view, None, recorded)
    assert view.signal_waits_source == "read model" and view.signal_waits_known
    (wait,) = view.signal_waits
    assert (wait.name, wait.timeout_timer_seq, wait.due_ms) == ("approve", 7, 5_000)
    # No timeout is recorded as 0: shown as none.
    find_signal_waits(view, None, [{**recorded[0], "timer_seq": 0, "timeout_at_ms": 0}])
    assert (view.signal_waits[0].timeout_timer_seq, view.signal_waits[0].due_ms) == (None, None)


@pytest.mark.parametrize("recorded", [None, []], ids=["no read-model column", "none recorded"])
def test_a_run_from_before_waits_were_recorded_is_replayed(
    recorded: list[dict[str, Any]] | None,
) -> None:
    view = _waiting()
    (timer,) = [e.body for e in view.events if isinstance(e.body, TimerStarted)]
    find_signal_waits(view, registry, recorded)
    assert view.signal_waits_source == "replayed"
    (wait,) = view.signal_waits
    assert (wait.name, wait.timeout_timer_seq, wait.due_ms) == (
        "approve", timer.timer_seq, timer.fire_at_ms
    )  # fmt: skip


def test_without_the_code_an_old_run_says_its_waits_are_unknown() -> None:
    view = _waiting()
    find_signal_waits(view, None, [])
    assert view.signal_waits == [] and not view.signal_waits_known


def test_a_run_that_records_its_waits_is_not_replayed_when_none_is_open() -> None:
    view = _waiting()
    last = view.events[-1]
    view.events.append(Event(last.workflow_id, last.seq + 1, last.run_id, last.recorded_at_ms,
                             SignalWaitStarted("approve")))  # fmt: skip
    # The read model says no wait is open (say, the signal just came): nothing to replay.
    find_signal_waits(view, registry, [])
    assert view.signal_waits == [] and view.signal_waits_source == "read model"
