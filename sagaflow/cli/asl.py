"""`sagaflow asl ...`: validate, run, draw and deploy state machines; answer task tokens."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagaflow.asl import graph, model, tokens
from sagaflow.asl.run import run_definition
from sagaflow.cli.output import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    emit,
    wants_json,
)
from sagaflow.config import Config
from sagaflow.workflow import Registry

Command = Callable[..., argparse.ArgumentParser]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path!r} ({exc.strerror}); pass a state machine file",
                       EXIT_USAGE) from exc  # fmt: skip


def _load(path: str) -> dict[str, Any]:
    try:
        return model.load(_read(path), path)
    except model.DefinitionError as exc:
        raise CliError(str(exc), EXIT_FAILED) from exc


def cmd_validate(config: Config, args: argparse.Namespace) -> int:
    document = model.parse_document(_read(args.file), args.file)
    problems = model.validate(document)
    emit(
        args,
        {"file": args.file, "valid": not problems, "problems": [
            {"where": p.where, "field": p.field, "message": p.message} for p in problems]},
        f"{args.file}: valid" if not problems else "\n".join(
            [f"{args.file}: {len(problems)} problem(s):", *(f"  - {p}" for p in problems)]),
    )  # fmt: skip
    return EXIT_FAILED if problems else 0


def run_file(path: str, input: Any, activities: str | None = None) -> dict[str, Any]:
    """What `sagaflow asl run` computes: the outcome of one in-process execution."""
    from sagaflow.app import load_registry

    definition = _load(path)
    registry = load_registry(activities) if activities else Registry()
    return run_definition(definition, input, registry, name=Path(path).stem)


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    from sagaflow.cli.commands import parse_json_arg

    value = parse_json_arg("--input", args.input) if args.input is not None else {}
    outcome = run_file(args.file, value, args.activities)
    if wants_json(args):
        print(json.dumps(outcome))
    elif outcome["status"] == "SUCCEEDED":
        print(f"SUCCEEDED\n{json.dumps(outcome['output'], indent=2)}")
    else:
        print(f"{outcome['status']}: {outcome.get('error')}: {outcome.get('cause')}")
    return 0


def cmd_graph(config: Config, args: argparse.Namespace) -> None:
    try:
        text = graph.render(_load(args.file), args.format)
    except graph.GraphError as exc:
        raise CliError(str(exc), EXIT_FAILED) from exc
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text, end="")


def cmd_deploy(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.asl import store
    from sagaflow.kafka.admin import TopicError
    from sagaflow.kafka.triage import AbortRequired, FatalKafkaError

    definition = _load(args.file)
    try:
        deployed, created = store.deploy(config, args.name, definition)
    except (store.DeployError, TopicError, AbortRequired, FatalKafkaError) as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from exc
    emit(
        args,
        {"name": deployed.name, "version": deployed.version, "created": created,
         "digest": deployed.digest, "topic": store.topic(config)},
        f"{deployed.name} version {deployed.version} "
        f"{'deployed' if created else 'is already deployed (unchanged)'}\n"
        f"  start it with: sagaflow start {deployed.name} --input '{{...}}'",
    )  # fmt: skip


def _answer(config: Config, args: argparse.Namespace, answer: dict[str, Any]) -> None:
    from sagaflow.cli.commands import cmd_signal

    try:
        token = tokens.TaskToken.decode(args.token)
    except tokens.TaskTokenError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    forwarded = argparse.Namespace(**vars(args))
    forwarded.id, forwarded.name, forwarded.payload = token.workflow_id, token.signal, None
    forwarded.payload = json.dumps(answer)
    cmd_signal(config, forwarded)


def cmd_task_success(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.cli.commands import parse_json_arg

    _answer(config, args, tokens.success(parse_json_arg("--output", args.output)))


def cmd_task_failure(config: Config, args: argparse.Namespace) -> None:
    _answer(config, args, tokens.failure(args.error, args.cause))


def cmd_task_heartbeat(config: Config, args: argparse.Namespace) -> None:
    _answer(config, args, tokens.heartbeat())


def add_commands(sub: Any, command: Command, common: argparse.ArgumentParser) -> None:
    """The `asl` group under the top-level subparsers `sub`."""
    group = sub.add_parser("asl", help="Amazon States Language state machines", parents=[common])
    asub = group.add_subparsers(dest="asl_command", required=True, parser_class=type(group))

    p = command("validate", cmd_validate, "check a state machine; exit 1 with its problems", asub)
    p.add_argument("file", help="state machine, YAML or JSON")

    p = command("run", cmd_run, "run one execution in-process on virtual time", asub)
    p.add_argument("file", help="state machine, YAML or JSON")
    p.add_argument("--input", help="JSON input, or @file.json, or @- for stdin (default {})")
    p.add_argument("--activities", help="module:attribute of the Registry with the activities")

    p = command("graph", cmd_graph, "draw the state graph", asub)
    p.add_argument("file", help="state machine, YAML or JSON")
    p.add_argument("--format", choices=graph.FORMATS, default="dot")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")

    p = command("deploy", cmd_deploy, "store a state machine in Kafka as a new version", asub)
    p.add_argument("file", help="state machine, YAML or JSON")
    p.add_argument("--name", required=True, help="workflow type to start it by")

    p = command("task-success", cmd_task_success, "SendTaskSuccess: resume a waiting task", asub)
    p.add_argument("token", help="the task token ($$.Task.Token) the activity received")
    p.add_argument("--output", required=True, help="the task's JSON result, or @file.json")

    p = command("task-failure", cmd_task_failure, "SendTaskFailure: fail a waiting task", asub)
    p.add_argument("token", help="the task token")
    p.add_argument("--error", default="", help="error name Retry/Catch match on")
    p.add_argument("--cause", default="", help="what went wrong")

    p = command("task-heartbeat", cmd_task_heartbeat, "SendTaskHeartbeat for a waiting task",
                asub)  # fmt: skip
    p.add_argument("token", help="the task token")
