"""Spans of queries and updates: an update is "update <name>" -> "update completed" in the run's
trace; an answer that records nothing is one span, under the run's start span."""

from __future__ import annotations

import pytest
from opentelemetry.trace import StatusCode

from sagaflow import telemetry
from sagaflow.core.messages import (
    Decision,
    QueryWorkflow,
    ReplyToCaller,
    StartWorkflow,
    UpdateAccepted,
    UpdateCompleted,
    UpdateWorkflow,
    WorkflowStarted,
)
from tests.unit.test_telemetry import CONFIG, WID, Saga, saga

pytestmark = pytest.mark.unit

__all__ = ["saga"]  # the fixture, shared with the checkout's span tests


def test_updates_and_queries_are_spans_of_the_run(saga: Saga) -> None:
    commands = CONFIG.topics.commands
    start = StartWorkflow(WID, "cart", b"{}")
    headers = telemetry.command_headers(saga.client, commands)(start)
    saga.decide(
        start,
        saga.message(commands, start, headers),
        Decision((saga.event(WorkflowStarted("cart", 1, b"{}", 7), 1_000),)),
    )
    update = UpdateWorkflow(WID, "add_item", b"{}", "u1", "r1")
    saga.decide(
        update,
        saga.message(commands, update, []),
        Decision(
            (
                saga.event(UpdateAccepted("u1", "add_item", b"{}", "r1"), 2_000),
                saga.event(UpdateCompleted("u1", b"null", "Boom", "no"), 2_000),
            )
        ),
    )
    query = QueryWorkflow(WID, "items", b"null", "r2")
    reply = ReplyToCaller("r2", "r2", False, b"null", "unknown_query", "no such")
    asked_with = telemetry.command_headers(saga.client, commands)(query)
    saga.decide(query, saga.message(commands, query, asked_with), Decision(effects=(reply,)))

    spans = saga.spans()
    root = spans["start cart"]
    accepted, completed, asked = (
        spans["update add_item"],
        spans["update completed"],
        spans["query items"],
    )
    assert accepted.parent is not None and accepted.parent.span_id == root.context.span_id
    assert completed.parent is not None and completed.parent.span_id == accepted.context.span_id
    assert completed.status.status_code == StatusCode.ERROR
    assert asked.parent is not None and asked.parent.span_id == root.context.span_id
    assert asked.status.status_code == StatusCode.ERROR
    assert asked.attributes is not None and asked.attributes["sagaflow.query.name"] == "items"
    sender = spans["sagaflow query items"]
    assert [link.context.span_id for link in asked.links] == [sender.context.span_id]
