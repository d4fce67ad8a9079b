"""The one table of message types covers every type, and every module that must handle every
event type (state appliers, read-model folds, spans) does."""

from __future__ import annotations

import typing

import pytest

from sagaflow.core import kinds, state
from sagaflow.core import messages as m
from sagaflow.readmodel import fold

pytestmark = pytest.mark.unit

EVENT_TYPES = set(typing.get_args(m.EventBody))
COMMAND_TYPES = set(typing.get_args(m.Command))

NO_SPAN_OF_ITS_OWN = {m.TimerCancelled, m.MarkerRecorded, m.ActivityHeartbeatRecorded}
"""Recorded under their run's context: a cancelled timer and a patch marker are not effects,
and a span per heartbeat would drown the trace."""

SAMPLES: dict[type, m.EventBody] = {
    m.WorkflowStarted: m.WorkflowStarted("checkout", 1, b"{}", 7),
    m.ActivityScheduled: m.ActivityScheduled(2, "charge", "payments", b"{}", m.RetryPolicy(), 0, 0),
    m.ActivityAttemptFailed: m.ActivityAttemptFailed(2, 1, "Boom", "no", False, 5_000),
    m.ActivityRetried: m.ActivityRetried(2, 2),
    m.ActivityCompleted: m.ActivityCompleted(2, 2, b'{"ok":true}'),
    m.ActivityFailed: m.ActivityFailed(2, 3, "Boom", "no", b"null", "attempts_exhausted"),
    m.ActivityHeartbeatRecorded: m.ActivityHeartbeatRecorded(2, 1, b'{"done":5}'),
    m.ActivityCancelRequested: m.ActivityCancelRequested(2),
    m.TimerStarted: m.TimerStarted(3, 9_000),
    m.TimerFired: m.TimerFired(3),
    m.TimerCancelled: m.TimerCancelled(3),
    m.SignalReceived: m.SignalReceived("approve", b"{}"),
    m.SignalWaitStarted: m.SignalWaitStarted("approve", 4, 9_000),
    m.CancelRequested: m.CancelRequested("changed mind"),
    m.MarkerRecorded: m.MarkerRecorded("fix-1"),
    m.StateTransitioned: m.StateTransitioned(
        "Charge", "Task", "succeeded", "", b"{}", "", "", "Ship"
    ),
    m.UpdateAccepted: m.UpdateAccepted("u1", "add_item", b"{}", "req-1"),
    m.UpdateCompleted: m.UpdateCompleted("u1", b"1"),
    m.WorkflowCompleted: m.WorkflowCompleted(b"1"),
    m.WorkflowFailed: m.WorkflowFailed("Boom", "no", b"null"),
    m.WorkflowCancelled: m.WorkflowCancelled("changed mind"),
    m.WorkflowTerminated: m.WorkflowTerminated("stuck", "ops:ann"),
    m.WorkflowTimedOut: m.WorkflowTimedOut("run", 9_000),
    m.WorkflowContinuedAsNew: m.WorkflowContinuedAsNew("run-2", b"{}"),
    m.WorkflowParked: m.WorkflowParked("workflow_error", "bug"),
    m.WorkflowUnparked: m.WorkflowUnparked(),
    m.CommandRejected: m.CommandRejected("c", "SignalWorkflow", "workflow_closed", "closed"),
    m.ChildWorkflowStarted: m.ChildWorkflowStarted(5, "wf/child-5", "ship", 0, b"{}", "abandon"),
    m.ChildWorkflowCompleted: m.ChildWorkflowCompleted(5, "wf/child-5", "run-c", b"{}"),
    m.ChildWorkflowFailed: m.ChildWorkflowFailed(5, "wf/child-5", "run-c", "failed", "Boom", "no"),
}


def test_the_samples_cover_every_event_type() -> None:
    assert set(SAMPLES) == EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES, key=lambda t: t.__name__))
def test_every_event_type_has_an_applier_a_description_a_fold_and_a_span(
    event_type: type,
) -> None:
    body = SAMPLES[event_type]
    assert event_type in state._APPLIERS, "engine applier"
    assert event_type in fold._APPLIERS, "read-model fold"
    assert kinds.describe(body).strip(), "description"
    name = kinds.span_name(body)
    if event_type in NO_SPAN_OF_ITS_OWN:
        assert name is None
    else:
        assert name, "span name"


def test_every_command_type_has_a_row() -> None:
    assert set(kinds.COMMAND_KINDS) == COMMAND_TYPES


def test_a_module_that_forgets_a_type_fails_naming_it() -> None:
    table = {t: None for t in EVENT_TYPES - {m.TimerFired}}
    with pytest.raises(TypeError, match=r"missing \['TimerFired'\]"):
        kinds.check_covers(table, m.EventBody, "a module")


def test_replay_roles_partition_the_event_types() -> None:
    activations, recorded = set(kinds.ACTIVATIONS), set(kinds.COMMAND_EVENTS)
    assert not activations & recorded
    assert m.SignalReceived in activations and m.TimerStarted in recorded
    assert set(kinds.CLOSING_STATUS) == set(m.CLOSING_EVENTS)


def test_descriptions_read_well() -> None:
    assert kinds.describe(SAMPLES[m.TimerStarted]) == (
        "timer 3 started, fires at 1970-01-01 00:00:09.000"
    )
    assert kinds.span_name(SAMPLES[m.SignalReceived]) == "signal approve"
    child = m.ReportChildClosed("parent", "child-1", "r", "completed")
    assert kinds.describe_command(child) == "child child-1 completed"
