"""`asl_run`: run a state machine through `sagaflow asl run --json` (its function, in-process)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sagaflow.cli.main import main

ACTIVITIES = "tests.asl.activities:registry"
AslRun = Callable[..., dict[str, Any]]


def machine(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A one-state machine around `state` (End: true added where the type needs it)."""
    if state["Type"] not in ("Choice", "Succeed", "Fail") and "Next" not in state:
        state = {**state, "End": True}
    return {"StartAt": "S", "States": {"S": state}, **top}


@pytest.fixture
def asl_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> AslRun:
    def run(definition: dict[str, Any], input: Any = None, fmt: str = "json") -> dict[str, Any]:
        path = tmp_path / f"machine.{fmt}"
        path.write_text(json.dumps(definition))
        argv = ["asl", "run", str(path), "--activities", ACTIVITIES, "--json"]
        if input is not None:
            argv += ["--input", json.dumps(input)]
        code = main(argv)
        out = capsys.readouterr().out
        assert code == 0, out
        lines = out.strip().splitlines()
        assert len(lines) == 1, f"--json prints exactly one line: {out!r}"
        outcome: dict[str, Any] = json.loads(lines[0])
        return outcome

    return run


from tests.sagas import deployment  # noqa: E402  (the fixture, for the tests on real services)

__all__ = ["ACTIVITIES", "AslRun", "deployment", "machine"]
