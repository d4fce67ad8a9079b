"""`sagaflow schedule create|list|pause|resume|delete`: schedules are workflows
(`schedule:NAME`, type sagaflow.schedule, see sagaflow.schedule), so creating one is a start and
changing one is a signal; listing reads the read model."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sagaflow import schedule
from sagaflow.cli import commands, views
from sagaflow.cli.output import EXIT_USAGE, CliError, emit
from sagaflow.client import DeliveryError
from sagaflow.config import Config

Command = Callable[..., argparse.ArgumentParser]


def cmd_create(config: Config, args: argparse.Namespace) -> None:
    value = commands.parse_json_arg("--input", args.input) if args.input is not None else None
    spec = schedule.ScheduleSpec(
        name=args.name,
        workflow_type=args.type,
        interval_s=args.every,
        input=value,
        overlap=args.overlap,
        catchup_window_s=args.catchup_window,
    )
    problem = spec.problem()
    if problem:
        raise CliError(f"bad schedule: {problem}", EXIT_USAGE)
    workflow_id = schedule.schedule_id(args.name)
    with commands._telemetry() as tel:
        client, _ = commands._client(config, tel)
        try:
            client.start(schedule.SCHEDULE_TYPE, spec.to_json(), workflow_id=workflow_id)
        except DeliveryError as exc:
            raise commands._delivery_failed(exc) from exc
    emit(
        args,
        {"schedule": args.name, "workflow_id": workflow_id, "spec": spec.to_json()},
        f"schedule {args.name} created: {args.type} every {args.every:g}s "
        f"(overlap {args.overlap}); it is workflow {workflow_id}",
    )


def _control(action: str) -> Callable[[Config, argparse.Namespace], None]:
    def run(config: Config, args: argparse.Namespace) -> None:
        workflow_id = schedule.schedule_id(args.name)
        with commands._telemetry() as tel:
            client, _ = commands._client(config, tel)
            try:
                client.signal(workflow_id, schedule.CONTROL_SIGNAL, {"action": action})
            except DeliveryError as exc:
                raise commands._delivery_failed(exc) from exc
        emit(
            args,
            {"schedule": args.name, "workflow_id": workflow_id, "action": action},
            f"schedule {args.name}: {action} sent (see `sagaflow show {workflow_id}`)",
        )

    return run


def cmd_list(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.readmodel.schedules import list_schedules

    out = views.read_model(config, lambda conn: list_schedules(conn, args.limit))
    lines = [
        f"{s['name']:<24} {s['workflow_type']:<20} every {s['interval_s']}s  "
        f"{'PAUSED' if s['paused'] else 'active'}  overlap {s['overlap']}  "
        f"running {len(s['running_children'])}"
        for s in out
    ]
    emit(args, {"schedules": out}, "\n".join(lines) or "no schedules")


def add_commands(sub: Any, command: Command, common: argparse.ArgumentParser) -> None:
    """The `schedule` group under the top-level subparsers `sub`."""
    group = sub.add_parser("schedule", help="start a workflow every interval", parents=[common])
    ssub = group.add_subparsers(dest="schedule_command", required=True, parser_class=type(group))

    p = command("create", cmd_create, "create a schedule (the workflow schedule:NAME)", ssub)
    p.add_argument("name", help="schedule name")
    p.add_argument("type", help="workflow type to start at each fire time")
    p.add_argument("--every", type=float, required=True, help="interval in seconds (>= 1)")
    p.add_argument("--input", help="JSON input of each started workflow, or @file.json")
    p.add_argument("--overlap", choices=schedule.OVERLAP_POLICIES, default="skip")
    p.add_argument(
        "--catchup-window",
        type=float,
        default=3600.0,
        help="seconds of missed fire times caught up after downtime (default 3600)",
    )
    p = command("list", cmd_list, "running schedules, from the read model", ssub)
    p.add_argument("--limit", type=int, default=50, help="most schedules (default 50)")
    for action in schedule.ACTIONS:
        p = command(action, _control(action), f"{action} a schedule", ssub)
        p.add_argument("name", help="schedule name")
