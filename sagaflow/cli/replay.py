"""`sagaflow replay`: replay recorded histories against the local code before deploying it.

Reads every history of a workflow type from the events topic, runs each run through the core's
replayer (sagaflow.core.replay) with the registry of SAGAFLOW_APP (or --app), and reports which
runs the code would not reproduce. Exit 1 if any would not: that is a nondeterminism the
deploy would otherwise find by parking live workflows.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass

from sagaflow.app import load_registry
from sagaflow.cli.eventlog import Logged, all_events
from sagaflow.cli.output import EXIT_FAILED, EXIT_USAGE, CliError, emit
from sagaflow.config import Config
from sagaflow.core.errors import NonDeterminismError, RegistryError
from sagaflow.core.messages import CommandRejected, Event, WorkflowStarted
from sagaflow.core.registry import Registry
from sagaflow.core.replay import replay


@dataclass(frozen=True)
class RunResult:
    workflow_id: str
    run_id: str
    version: int
    events: int
    outcome: str
    """'ok', 'nondeterminism', 'workflow_error', 'unregistered' or 'broken_history'."""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass
class _Run:
    workflow_id: str
    run_id: str
    events: dict[int, Event]


def collect_runs(
    events: list[Event], workflow_type: str, workflow_id: str | None, limit: int | None
) -> list[_Run]:
    """The runs of `workflow_type` (in order of first appearance in the log), each with its
    events by seq; rejections (seq 0) belong to no history and are left out."""
    runs: dict[tuple[str, str], _Run] = {}
    types: dict[tuple[str, str], str] = {}
    for event in events:
        if isinstance(event.body, CommandRejected) or event.seq == 0:
            continue
        if workflow_id is not None and event.workflow_id != workflow_id:
            continue
        key = (event.workflow_id, event.run_id)
        run = runs.setdefault(key, _Run(event.workflow_id, event.run_id, {}))
        run.events.setdefault(event.seq, event)  # a re-delivered copy changes nothing
        if isinstance(event.body, WorkflowStarted):
            types[key] = event.body.workflow_type
    chosen = [run for key, run in runs.items() if types.get(key) == workflow_type]
    if limit is not None:
        by_workflow: dict[str, list[_Run]] = defaultdict(list)
        for run in chosen:
            by_workflow[run.workflow_id].append(run)
        keep = set(list(by_workflow)[:limit])
        chosen = [run for run in chosen if run.workflow_id in keep]
    return chosen


def replay_run(registry: Registry, run: _Run) -> RunResult:
    history = [run.events[seq] for seq in sorted(run.events)]
    first = history[0]
    version = first.body.version if isinstance(first.body, WorkflowStarted) else 0
    seqs = [e.seq for e in history]
    if not isinstance(first.body, WorkflowStarted) or seqs != list(range(seqs[0], seqs[-1] + 1)):
        missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
        return RunResult(
            run.workflow_id,
            run.run_id,
            version,
            len(history),
            "broken_history",
            f"history does not start with WorkflowStarted or has gaps "
            f"(missing seqs {missing[:10]}); check the events topic's retention",
        )
    try:
        outcome = replay(registry, history)
    except NonDeterminismError as exc:
        return RunResult(
            run.workflow_id, run.run_id, version, len(history), "nondeterminism", str(exc)
        )
    except RegistryError as exc:
        return RunResult(
            run.workflow_id,
            run.run_id,
            version,
            len(history),
            "unregistered",
            f"{exc} (a running workflow needs its version registered)",
        )
    if outcome.error is not None:
        return RunResult(
            run.workflow_id, run.run_id, version, len(history), "workflow_error", str(outcome.error)
        )
    return RunResult(run.workflow_id, run.run_id, version, len(history), "ok")


def cmd_replay(config: Config, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit {args.limit}: must be at least 1", EXIT_USAGE)
    registry = load_registry(args.app or config.app)
    if not registry.has_workflow_type(args.type):
        raise CliError(
            f"workflow type {args.type!r} is not registered in "
            f"{args.app or config.app}; registered: {sorted(registry.workflows)}. "
            "Pass --app module:attribute naming the registry with your new code",
            EXIT_USAGE,
        )
    events = [
        item.event
        for item in all_events(config, timeout_s=args.timeout)
        if isinstance(item, Logged)
    ]
    results = [
        replay_run(registry, run)
        for run in collect_runs(events, args.type, args.workflow_id, args.limit)
    ]
    failed = [r for r in results if not r.ok]
    lines = [
        f"{'ok' if r.ok else r.outcome.upper():15} {r.workflow_id} run {r.run_id[:12]} "
        f"v{r.version} ({r.events} events)" + (f"\n    {r.message}" if r.message else "")
        for r in results
    ]
    where = f"{args.type}" + (f" {args.workflow_id}" if args.workflow_id else "")
    summary = (
        f"replayed {len(results)} run(s) of {where} from {config.topics.events}: "
        f"{len(results) - len(failed)} ok, {len(failed)} failed"
    )
    if not results:
        summary = f"no recorded runs of {where} in {config.topics.events}; nothing to check"
    emit(
        args,
        {
            "workflow_type": args.type,
            "runs": [r.__dict__ | {"ok": r.ok} for r in results],
            "ok": not failed,
        },
        "\n".join([*lines, summary]),
    )
    return EXIT_FAILED if failed else 0
