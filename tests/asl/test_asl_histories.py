"""Recorded state-machine histories replay against today's interpreter, whatever interpreter
recorded them (tests/histories/asl/: `before_state_events_*` predate state transition records,
`state_events_*` predate stopping sibling branches, `cancel_siblings_*` are today's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagaflow.core.replay import replay
from sagaflow.testing import history_from_json, history_to_json
from tests.histories.asl import record

pytestmark = pytest.mark.unit

HISTORIES = sorted(record.HERE.glob("*_*.json"))


def test_there_are_recorded_state_machine_histories() -> None:
    stems = {p.stem for p in HISTORIES}
    for prefix in ("before_state_events", "state_events", "cancel_siblings"):
        assert {f"{prefix}_{run}" for run in record.RUNS} <= stems


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_a_recorded_state_machine_history_replays_cleanly(path: Path) -> None:
    history = history_from_json(path.read_text())
    assert history_from_json(history_to_json(history)) == history
    outcome = replay(record.registry(), history)
    assert outcome.error is None
    assert outcome.driver is not None and outcome.driver.finished
    assert outcome.new_commands == []
