"""Record the state-machine histories: `PYTHONPATH=. python tests/histories/asl/record.py PREFIX`.

Each history runs `machine.json` (registered as type "recorded", version 1) with the test
activities. Recorded histories are frozen: record new ones under a new PREFIX when the
interpreter's behaviour changes, never to make a failing replay pass: `before_state_events` was
recorded by the interpreter that did not yet record state transitions, `state_events` by the one
that did not yet stop sibling branches, `cancel_siblings` by today's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sagaflow.asl import tokens
from sagaflow.asl.interpreter import register
from sagaflow.asl.model import load
from sagaflow.testing import WorkflowEnvironment, history_to_json
from sagaflow.workflow import Registry
from tests.asl import activities

HERE = Path(__file__).parent
NAME = "recorded"
RUNS: dict[str, dict[str, Any]] = {
    "completed": {"xs": [1, 2, 3], "fail": False, "abort": False},
    "caught_branch_failure": {"xs": [4], "fail": True, "abort": False},
    "failed": {"xs": [], "fail": False, "abort": True},
}


def registry() -> Registry:
    """The test activities' registry, with the recorded machine registered (once)."""
    reg = activities.registry
    if not reg.has_workflow_type(NAME):
        register(reg, NAME, load((HERE / "machine.json").read_text(), "machine.json"))
    return reg


def run(reg: Registry, workflow_id: str, input: dict[str, Any]) -> WorkflowEnvironment:
    """Run one execution to its end, approving the task token when it is handed out."""
    env = WorkflowEnvironment(reg)
    handed_out = len(activities.tokens)
    env.start(NAME, input, workflow_id=workflow_id)
    for _ in range(1_000):  # a second of virtual time per step: the waits are a few seconds
        env.run(advance_time=False)
        if env.status(workflow_id) != "running":
            return env
        if len(activities.tokens) > handed_out:
            token = tokens.TaskToken.decode(activities.tokens[-1])
            env.signal(workflow_id, token.signal, tokens.success({"approved": True}))
            handed_out = len(activities.tokens)
        else:
            env.advance(1)
    raise AssertionError(f"{workflow_id} did not finish")


def main(prefix: str) -> None:
    reg = registry()
    for name, input in RUNS.items():
        env = run(reg, f"{prefix}-{name}", input)
        path = HERE / f"{prefix}_{name}.json"
        path.write_text(history_to_json(env.history(f"{prefix}-{name}")))


if __name__ == "__main__":
    main(sys.argv[1])
