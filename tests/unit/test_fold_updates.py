"""The read model's projection of updates: accepted, then completed or failed."""

from __future__ import annotations

import pytest

from sagaflow.core import messages as m
from sagaflow.readmodel.fold import apply_event

pytestmark = pytest.mark.unit


def test_updates_are_projected_with_their_outcome() -> None:
    events = [
        m.Event("w", 1, "r", 1_000, m.WorkflowStarted("cart", 1, b"{}", 7)),
        m.Event("w", 2, "r", 2_000, m.UpdateAccepted("u1", "add", b'{"q":1}', "req")),
        m.Event("w", 3, "r", 2_000, m.UpdateCompleted("u1", b"1")),
        m.Event("w", 4, "r", 3_000, m.UpdateAccepted("u2", "add", b"{}", "req2")),
        m.Event("w", 5, "r", 3_000, m.UpdateCompleted("u2", b"null", "Boom", "no")),
        m.Event("w", 6, "r", 4_000, m.UpdateAccepted("u3", "add", b"{}", "req3")),
    ]
    row = None
    for event in events:
        row = apply_event(row, event)
    assert row is not None
    assert [(u["update_id"], u["status"]) for u in row.updates] == [
        ("u1", "completed"),
        ("u2", "failed"),
        ("u3", "running"),
    ]
    assert row.updates[0]["result"] == 1 and row.updates[0]["args"] == {"q": 1}
    assert row.updates[1]["error"] == {"type": "Boom", "message": "no"}


def test_the_cli_and_the_ui_show_updates() -> None:
    from sagaflow.cli.output import describe
    from sagaflow.ui.logview import graph_steps

    accepted = m.Event("w", 2, "r", 2_000, m.UpdateAccepted("u1", "add", b'{"q":1}', "req"))
    failed = m.Event("w", 3, "r", 2_000, m.UpdateCompleted("u1", b"null", "Boom", "no"))
    assert describe(accepted) == 'update add (u1) accepted: {"q":1}'
    assert describe(failed) == "update u1 failed: Boom: no"
    assert graph_steps([accepted, failed]) == [
        {"kind": "update", "label": "update add", "state": "failed"}
    ]
