"""Replaying any recorded state-machine history reproduces it (property test), and the graph."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagaflow.asl import graph
from sagaflow.asl.interpreter import CANCEL_SIBLINGS, PATCHES, RECORD_STATES, register
from sagaflow.asl.model import load
from sagaflow.core import messages as m
from sagaflow.core.replay import replay
from sagaflow.testing import WorkflowEnvironment, history_from_json, history_to_json
from sagaflow.workflow import Registry
from tests.asl import activities

pytestmark = pytest.mark.unit

RICH = load(json.dumps({
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Parameters": {"xs.$": "$.xs", "r.$": "States.MathRandom(0, 9)",
                 "id.$": "States.UUID()", "fail.$": "$.fail"}, "Next": "Route"},
        "Route": {"Type": "Choice", "Choices": [
            {"Variable": "$.fail", "BooleanEquals": True, "Next": "Both"}], "Default": "Fan"},
        "Both": {"Type": "Parallel", "Branches": [
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}},
            {"StartAt": "F", "States": {"F": {"Type": "Task", "Resource": "activity:fail",
             "Parameters": {"error": "Boom"}, "Retry": [{"ErrorEquals": ["Boom"],
             "MaxAttempts": 2, "JitterStrategy": "FULL"}], "End": True}}}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Fan", "ResultPath": "$.err"}],
            "Next": "Fan"},
        "Fan": {"Type": "Map", "ItemsPath": "$.xs", "MaxConcurrency": 2,
                "ItemSelector": {"a.$": "$$.Map.Item.Value", "b.$": "$$.Map.Item.Index"},
                "ItemProcessor": {"StartAt": "Add", "States": {"Add": {
                    "Type": "Task", "Resource": "activity:add", "Next": "Nap"},
                    "Nap": {"Type": "Wait", "SecondsPath": "$", "End": True}}},
                "ResultPath": "$.sums", "End": True},
    },
}))  # fmt: skip
register(activities.registry, "rich", RICH)


def older_interpreter(patches: tuple[str, ...]) -> Registry:
    """The test activities with RICH run by an interpreter with only `patches` applied: what an
    older release recorded."""
    older = Registry()
    for activity in activities.registry.activities.values():
        older.activity(name=activity.name, task_queue=activity.task_queue)(activity.fn)
    register(older, "rich", RICH, patches=patches)
    return older


RECORDERS = {len(PATCHES): activities.registry} | {
    n: older_interpreter(PATCHES[:n]) for n in range(len(PATCHES))
}
"""Registries that record histories as each interpreter did, by how many patches it has."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    xs=st.lists(st.integers(min_value=0, max_value=50), max_size=5),
    fail=st.booleans(),
    workflow_id=st.text("abcdef0123456789-", min_size=1, max_size=12),
    patches=st.sampled_from(sorted(RECORDERS)),
)
def test_replaying_a_recorded_history_reproduces_it(
    xs: list[int], fail: bool, workflow_id: str, patches: int
) -> None:
    """Whichever interpreter recorded a history (today's, or one before a patch), today's
    replays it to the same end."""
    with WorkflowEnvironment(RECORDERS[patches]) as env:
        env.start("rich", {"xs": xs, "fail": fail}, workflow_id=workflow_id)
        env.run()
        assert env.status(workflow_id) == "completed"
        history = history_from_json(history_to_json(env.history(workflow_id)))
    applied = PATCHES[:patches]
    states = [e.body for e in history if isinstance(e.body, m.StateTransitioned)]
    assert bool(states) == (RECORD_STATES in applied)
    # Branch F fails (retries included) before branch W's 5 s wait is over: W is stopped.
    cancelled = [s.state for s in states if s.transition == "cancelled"]
    assert cancelled == (["W"] if fail and CANCEL_SIBLINGS in applied else [])
    outcome = replay(activities.registry, history)
    assert outcome.error is None
    assert outcome.driver is not None and outcome.driver.finished
    assert outcome.new_commands == []


def test_graph_dot_has_clusters_and_marked_catch_edges() -> None:
    dot = graph.to_dot(RICH)
    assert dot.startswith("digraph state_machine {")
    assert dot.count("subgraph cluster_") == 3  # two Parallel branches and the Map processor
    assert 'label="Both: branch 1"' in dot and 'label="Fan: items"' in dot
    assert 'label="catch States.ALL", style=dashed' in dot
    assert 'label="$.fail BooleanEquals true"' in dot


def test_graph_mermaid() -> None:
    text = graph.to_mermaid(RICH)
    assert text.startswith("flowchart TD\n")
    assert text.count("subgraph ") == 3
    assert '-.->|"catch States.ALL"|' in text
    assert 's1{"Route"}' in text


def test_graph_svg_needs_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("dot") is not None:
        svg = graph.to_svg(RICH)
        assert "<svg" in svg and "Fan: items" in svg
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    with pytest.raises(graph.GraphError, match="apt-get install graphviz"):
        graph.to_svg(RICH)


def test_every_graph_format_through_the_cli(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from sagaflow.cli.main import main

    path = tmp_path / "m.json"
    path.write_text(json.dumps(RICH))
    assert main(["asl", "graph", str(path), "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")
    out = tmp_path / "m.dot"
    assert main(["asl", "graph", str(path), "-o", str(out)]) == 0
    assert out.read_text().startswith("digraph")


def test_the_readme_state_machine_is_valid_and_its_graph_is_current() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## State machines (Amazon States Language)", 1)[1]
    document = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = section.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert graph.to_mermaid(load(document, "README.md")) == shown
