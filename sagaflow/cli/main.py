"""Argument parsing and dispatch for `sagaflow`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sagaflow.config import Config, ConfigError

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class CliError(Exception):
    """One line for stderr; the exit code says what kind of trouble it was."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


Handler = Callable[[Config, argparse.Namespace], Any]


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(human)


# --------------------------------------------------------------------------- topics


def _topics_create(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.app import load_registry
    from sagaflow.kafka.admin import TopicError, create_topics

    queues = set(args.queue or ())
    if not args.queue:
        queues |= load_registry(config.app).task_queues()
    try:
        outcome = create_topics(config, queues, partitions=args.partitions,
                                replication_factor=args.replication_factor)
    except TopicError as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from exc
    _emit(args, outcome, "\n".join(f"{state:8} {name}" for name, state in outcome.items()))


def _topics_describe(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.kafka.admin import describe_topics

    topics = describe_topics(config)
    _emit(args, topics, "\n".join(f"{name}  partitions={n}" for name, n in topics.items())
          or f"no topics under prefix {config.topics.prefix!r}; run 'sagaflow topics create'")


# --------------------------------------------------------------------------- db


def _db_migrate(config: Config, args: argparse.Namespace) -> None:
    from sagaflow.db.migrate import migrate

    applied = asyncio.run(migrate(config.database_url))
    _emit(args, {"applied": applied},
          "\n".join(f"applied  {name}" for name in applied) or "schema is up to date")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sagaflow", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)

    topics = sub.add_parser("topics", help="create or describe the Kafka topics")
    tsub = topics.add_subparsers(dest="topics_command", required=True)
    create = tsub.add_parser("create", help="create missing topics (idempotent)")
    create.add_argument("--partitions", type=int, default=None)
    create.add_argument("--replication-factor", type=int, default=None)
    create.add_argument("--queue", action="append",
                        help="task queue (repeatable); default: every queue of SAGAFLOW_APP")
    create.set_defaults(handler=_topics_create)
    tsub.add_parser("describe", help="list topics and partition counts").set_defaults(
        handler=_topics_describe)

    db = sub.add_parser("db", help="database schema")
    dsub = db.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("migrate", help="apply pending migrations").set_defaults(handler=_db_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = Config.from_env()
        handler: Handler = args.handler
        handler(config, args)
    except (ConfigError, CliError) as exc:
        print(f"sagaflow: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return 0
