"""Argument parsing and dispatch for `sagaflow`.

Each subcommand's handler lives in the module of its concern (commands, views, dlq, replay);
here are the parser, the admin commands (topics, db) and the one place errors become a line on
stderr and an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sagaflow.cli import ask, asl, commands, dlq, replay, views
from sagaflow.cli.output import (
    EXIT_FAILED,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    emit,
)
from sagaflow.config import Config, ConfigError

__all__ = [
    "EXIT_FAILED",
    "EXIT_TIMEOUT",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "build_parser",
    "main",
]

Handler = Callable[[Config, argparse.Namespace], Any]
"""Returns None or an exit code."""


# --------------------------------------------------------------------------- topics


def _topics_create(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.app import load_registry
    from sagaflow.cli.kafkaio import list_topics
    from sagaflow.kafka.admin import TopicError, create_topics

    queues = set(args.queue or ())
    if not args.queue:
        queues |= load_registry(config.app).task_queues()
    list_topics(config)  # fail in seconds, not after the admin client's 30 s, if Kafka is down
    try:
        outcome = create_topics(
            config, queues, partitions=args.partitions, replication_factor=args.replication_factor
        )
    except TopicError as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from exc
    emit(args, outcome, "\n".join(f"{state:8} {name}" for name, state in outcome.items()))


def _topics_describe(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.cli.kafkaio import list_topics

    md = list_topics(config)
    topics = {
        name: len(tm.partitions)
        for name, tm in sorted(md.topics.items())
        if name.startswith(config.topics.prefix)
    }
    emit(
        args,
        topics,
        "\n".join(f"{name}  partitions={n}" for name, n in topics.items())
        or f"no topics under prefix {config.topics.prefix!r}; run 'sagaflow topics create'",
    )


# --------------------------------------------------------------------------- db


def _db_migrate(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.db.migrate import MigrationError, migrate

    async def run() -> list[str]:
        async with await views.connect_async(config) as conn:
            return await migrate(conn)

    try:
        applied = asyncio.run(run())
    except MigrationError as exc:
        raise CliError(str(exc)) from exc
    emit(
        args,
        {"applied": applied},
        "\n".join(f"applied  {name}" for name in applied) or "schema is up to date",
    )


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit code 2), like every error."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"sagaflow: {message} (see `{self.prog} --help`)\n")


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} must be more than 0 seconds")
    return value


def _ui(config: Config, args: argparse.Namespace) -> int:
    from sagaflow.ui.serve import cmd_ui  # aiohttp and jinja2 load only for this command

    return cmd_ui(config, args)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    # SUPPRESS: `sagaflow --json show X` and `sagaflow show X --json` both work.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser = _Parser(prog="sagaflow", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(
        name: str, handler: Handler, help_text: str, into: Any = sub
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = into.add_parser(
            name, help=help_text, description=help_text, parents=[common]
        )
        p.set_defaults(handler=handler)
        return p

    # -- acting on workflows
    p = command("start", commands.cmd_start, "start a workflow: produce StartWorkflow to Kafka")
    p.add_argument("type", help="workflow type, e.g. checkout")
    p.add_argument("--input", required=True, help="JSON input, or @file.json, or @- for stdin")
    p.add_argument("--id", help="workflow id (default: TYPE-<random>)")
    p.add_argument("--version", type=int, help="workflow version (default: the newest)")
    p.add_argument(
        "--execution-timeout",
        type=_positive_float,
        help="seconds until the workflow (all its runs) closes as timed_out (default: none)",
    )
    p.add_argument(
        "--run-timeout",
        type=_positive_float,
        help="seconds until each run closes as timed_out (default: none)",
    )

    p = command("signal", commands.cmd_signal, "send a named signal to a workflow")
    p.add_argument("id", help="workflow id")
    p.add_argument("name", help="signal name")
    p.add_argument("--payload", help="JSON payload, or @file.json (default: null)")

    p = command("query", ask.cmd_query, "ask a workflow's query handler and print the answer")
    p.add_argument("id", help="workflow id")
    p.add_argument("name", help="query name")
    p.add_argument("args", nargs="?", help="JSON arguments, or @file.json (default: null)")
    p.add_argument(
        "--timeout", type=_positive_float, default=10.0, help="seconds to wait (default 10)"
    )

    p = command("update", ask.cmd_update, "send an update and wait for its result")
    p.add_argument("id", help="workflow id")
    p.add_argument("name", help="update name")
    p.add_argument("args", help="JSON arguments, or @file.json")
    p.add_argument(
        "--update-id", help="repeat an earlier update safely (default: a new id)", default=None
    )
    p.add_argument(
        "--timeout", type=_positive_float, default=30.0, help="seconds to wait (default 30)"
    )

    p = command("cancel", commands.cmd_cancel, "ask a workflow to cancel (it compensates)")
    p.add_argument("id", help="workflow id")
    p.add_argument("--reason", default="", help="why, recorded in history")

    p = command(
        "terminate",
        commands.cmd_terminate,
        "stop a workflow now: no compensation runs, pending activities are abandoned",
    )
    p.add_argument("id", help="workflow id")
    p.add_argument("--reason", required=True, help="why, recorded in history")
    p.add_argument("--by", help="who, recorded in history (default: cli:$USER)")

    p = command(
        "watch",
        commands.cmd_watch,
        "follow one workflow until it ends; exit 0 completed, 1 failed, cancelled or terminated",
    )
    p.add_argument("id", help="workflow id")
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=600.0,
        help=f"give up after this many seconds (exit {EXIT_TIMEOUT}; default 600)",
    )

    # -- looking at workflows
    p = command("show", views.cmd_show, "a workflow's status from the read model")
    p.add_argument("id", help="workflow id")

    p = command("history", views.cmd_history, "a workflow's events")
    p.add_argument("id", help="workflow id")
    p.add_argument(
        "--from-log", action="store_true", help="read the events topic instead of the read model"
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        help="with --from-log: most seconds to read the partition (default 30)",
    )

    p = command("list", views.cmd_list, "workflows, newest first, from the read model")
    p.add_argument("--status", choices=views.STATUSES)
    p.add_argument("--type", help="only this workflow type")
    p.add_argument("--limit", type=int, default=20, help="rows per page (default 20)")
    p.add_argument("--cursor", help="the 'next page' cursor printed by the previous page")

    # -- dead letters
    d = sub.add_parser("dlq", help="dead letters: list, inspect, re-drive", parents=[common])
    dsub = d.add_subparsers(dest="dlq_command", required=True, parser_class=_Parser)
    p = command("list", dlq.cmd_dlq_list, "the newest dead letters", dsub)
    p.add_argument("--limit", type=int, default=50, help="most dead letters (default 50)")
    p.add_argument("--timeout", type=_positive_float, default=30.0, help=argparse.SUPPRESS)
    for name, handler, text in (
        ("inspect", dlq.cmd_dlq_inspect, "one dead letter: reason, origin and payload"),
        ("redrive", dlq.cmd_dlq_redrive, "send a dead letter back to its source topic"),
    ):
        p = command(name, handler, text, dsub)
        p.add_argument("offset", type=int, metavar="OFFSET", help="offset in the dlq topic")
        p.add_argument("--partition", type=int, default=0, help="dlq partition (default 0)")

    # -- replay
    p = command(
        "replay",
        replay.cmd_replay,
        "replay recorded histories against the local code; exit 1 on nondeterminism",
    )
    p.add_argument("type", help="workflow type to check")
    p.add_argument("--workflow-id", help="only this workflow")
    p.add_argument("--limit", type=int, help="at most this many workflows")
    p.add_argument("--app", help="module:attribute of the Registry (default: SAGAFLOW_APP)")
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=120.0,
        help="most seconds to read the events topic (default 120)",
    )

    # -- the web UI
    p = command("ui", _ui, "serve the web UI (workflows, traces, dead letters) until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8088, help="port (default 8088)")

    # -- administration
    topics = sub.add_parser("topics", help="create or describe the Kafka topics", parents=[common])
    tsub = topics.add_subparsers(dest="topics_command", required=True, parser_class=_Parser)
    create = command("create", _topics_create, "create missing topics (idempotent)", tsub)
    create.add_argument("--partitions", type=int, default=None)
    create.add_argument("--replication-factor", type=int, default=None)
    create.add_argument(
        "--queue",
        action="append",
        help="task queue (repeatable); default: every queue of SAGAFLOW_APP",
    )
    command("describe", _topics_describe, "list topics and partition counts", tsub)

    db = sub.add_parser("db", help="database schema", parents=[common])
    dbsub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    command("migrate", _db_migrate, "apply pending migrations", dbsub)

    asl.add_commands(sub, command, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        config = Config.from_env()
        handler: Handler = args.handler
        code = handler(config, args)
        sys.stdout.flush()
    except (ConfigError, CliError) as exc:
        print(f"sagaflow: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`sagaflow start ... | head -1`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code if isinstance(code, int) else 0
