"""A state machine execution on the workflow page: its definition, the path it took, its graph.

The definition comes from the definitions topic (sagaflow.asl.store), cached per (name,
version): a deployed version never changes. The path (visited states, the current one, the one
it failed in) comes from `state_path`, the one place that knows where paths come from: the read
model's state path, projected from the interpreter's recorded state transitions. An execution
that started before transitions were recorded has none; for it the run's history is replayed
through the interpreter with a definition whose `States` tables note each state the interpreter
enters. Replay is deterministic, so that is exactly the path the execution took.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sagaflow.asl import store
from sagaflow.asl.interpreter import register
from sagaflow.config import Config
from sagaflow.core.errors import NonDeterminismError, RegistryError
from sagaflow.core.messages import ActivityScheduled, Event, WorkflowStarted
from sagaflow.core.registry import ActivityContext, Registry
from sagaflow.core.replay import replay
from sagaflow.kafka import logread, triage

log = logging.getLogger("sagaflow.ui")

ASL_QUALNAME = "asl["
"""How the interpreter names the workflow function of a state machine (interpreter.py)."""

MISS_RECHECK_S = 30.0


@dataclass(frozen=True)
class StatePath:
    """Where an execution went: state names in the order first entered."""

    visited: tuple[str, ...]
    current: str | None
    """The state it is in now (running executions only)."""
    failed: str | None
    """The state the execution failed in (failed executions only)."""
    source: str
    """Where the path was read from, for the page to say."""
    active: tuple[str, ...] = ()
    """Every state entered and not yet left (Parallel branches run at once), when known."""


class Definitions:
    """Deployed state machine definitions by (name, version), read from the definitions topic
    when asked for one not seen yet (at most every MISS_RECHECK_S, so code workflows, which are
    never found there, do not read the topic on every page)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._found: dict[tuple[str, int], dict[str, Any]] = {}
        self._read_at = -MISS_RECHECK_S
        self._lock = threading.Lock()

    def get(self, name: str, version: int) -> dict[str, Any] | None:
        """Blocking (call it in a thread). Raises DefinitionsUnreadable if Kafka does not answer."""
        with self._lock:
            key = (name, version)
            if key not in self._found and time.monotonic() - self._read_at >= MISS_RECHECK_S:
                self._read_at = time.monotonic()
                try:
                    if store.topic_exists(self._config):
                        deployed, _end = store.read_all(self._config, timeout_s=10.0)
                        self._found.update({(d.name, d.version): d.definition for d in deployed})
                except (logread.LogReadError, triage.AbortRequired, triage.FatalKafkaError) as exc:
                    self._read_at = -MISS_RECHECK_S  # Kafka was away: ask again next time
                    raise DefinitionsUnreadable(
                        f"the state machine definitions in {store.topic(self._config)} could not "
                        f"be read ({exc}); check the broker, then reload"
                    ) from exc
            return self._found.get(key)


class DefinitionsUnreadable(RuntimeError):
    """The definitions topic did not answer; the page says so instead of drawing the graph."""


def is_state_machine(registry: Registry | None, workflow_type: str, version: int) -> bool | None:
    """True/False when the registry knows the type; None when it cannot tell (no registry, or
    a version deployed after this process loaded)."""
    if registry is None:
        return None
    versions = registry.workflows.get(workflow_type)
    if not versions:
        return None
    found = versions.get(version)
    if found is None:
        return None
    return found.fn.__qualname__.startswith(ASL_QUALNAME)


class _NotingStates(dict[str, Any]):
    """A state machine's `States` table that notes each state the interpreter looks up, which
    it does exactly once per state entered (run_machine)."""

    def __init__(self, states: dict[str, Any], entered: list[str]) -> None:
        super().__init__(states)
        self.entered = entered

    def __getitem__(self, name: str) -> Any:
        self.entered.append(name)
        return super().__getitem__(name)


def _noting(machine: dict[str, Any], entered: list[str]) -> dict[str, Any]:
    """A copy of `machine` whose every States table (nested Parallel branches and Map item
    processors too) notes entered states into `entered`."""
    states = {}
    for name, original in machine["States"].items():
        state = dict(original)
        if "Branches" in state:
            state["Branches"] = [_noting(b, entered) for b in state["Branches"]]
        for field in ("ItemProcessor", "Iterator"):
            if field in state:
                state[field] = _noting(state[field], entered)
        states[name] = state
    return {**machine, "States": _NotingStates(states, entered)}


def _unused_activity(_ctx: ActivityContext, _arg: Any) -> None:
    raise AssertionError("replay never runs activities")


def path_from_history(
    definition: dict[str, Any], run: Sequence[Event], status: str
) -> tuple[StatePath | None, str | None]:
    """Replay one run (first event WorkflowStarted) through the interpreter; the path it took,
    or None and why not."""
    if not run or not isinstance(run[0].body, WorkflowStarted):
        return None, "the run's first event is not in the log read"
    started = run[0].body
    entered: list[str] = []
    registry = Registry()
    # The activities are declared from the history itself: the replay needs their names and
    # queues only, and this way the UI needs no application code.
    for event in run:
        body = event.body
        if isinstance(body, ActivityScheduled) and body.activity_name not in registry.activities:
            registry.activity(name=body.activity_name, task_queue=body.task_queue)(_unused_activity)
    register(registry, started.workflow_type, _noting(definition, entered), started.version)
    try:
        outcome = replay(registry, run)
    except (NonDeterminismError, RegistryError) as exc:
        return None, f"the path is unknown: the definition does not replay this run ({exc})"
    if outcome.driver is None:
        return None, f"the path is unknown: the interpreter stopped ({outcome.error})"
    visited = tuple(dict.fromkeys(entered))
    last = entered[-1] if entered else None
    return (
        StatePath(
            visited=visited,
            current=last if status in {"running", "parked"} else None,
            failed=last if status == "failed" else None,
            source="replayed from the event log",
        ),
        None,
    )


def state_path(
    definition: dict[str, Any],
    events: Sequence[Event],
    status: str,
    recorded: dict[str, Any] | None = None,
) -> tuple[StatePath | None, str | None]:
    """The path of the current run, and why there is none if so. `recorded` is the read
    model's state path of the workflow (its `state_path` column; None or empty when it has
    none): used as it is when there is one, else the run is replayed."""
    if recorded and recorded.get("visited"):
        return (
            StatePath(
                visited=tuple(recorded["visited"]),
                current=recorded.get("current"),
                failed=recorded.get("failed"),
                source="recorded state transitions",
                active=tuple(a["state"] for a in recorded.get("active") or []),
            ),
            None,
        )
    starts = [i for i, e in enumerate(events) if isinstance(e.body, WorkflowStarted)]
    if not starts:
        return None, "the path is unknown: the run's start is not in the log read"
    return path_from_history(definition, events[starts[-1] :], status)
