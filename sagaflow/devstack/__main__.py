"""python -m sagaflow.devstack {install,up,down,status,check}"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from sagaflow.devstack.check import check_jaeger, check_kafka, check_postgres
from sagaflow.devstack.common import StackError
from sagaflow.devstack.layout import certs_dir
from sagaflow.devstack.security import ensure_certs
from sagaflow.devstack.stack import Stack

# The stack's CLI prints its report for a person.
# ruff: noqa: T201


def _status(stack: Stack) -> int:
    statuses = stack.status()
    for s in statuses:
        pid = "-" if s.pid is None else str(s.pid)
        state = "healthy" if s.health.ok else "DOWN"
        ports = ",".join(str(p) for p in s.ports)
        print(f"{s.name:<9} pid {pid:<8} ports {ports:<28} {state:<8} {s.health.detail}")
        if s.pid is not None:
            print(
                f"{'':<9} {s.endpoint}; rss {s.rss_kib / 1024:.0f} MiB, "
                f"peak {s.peak_rss_kib / 1024:.0f} MiB"
            )
    total = sum(s.rss_kib for s in statuses) / 1024
    peak = sum(s.peak_rss_kib for s in statuses) / 1024
    print(f"stack rss {total:.0f} MiB, peak {peak:.0f} MiB (sum of each process's high-water mark)")
    return 0 if all(s.health.ok for s in statuses) else 1


def _check(stack: Stack) -> int:
    results: list[tuple[str, Callable[[], str]]] = [
        ("kafka", lambda: check_kafka(stack.kafka_bootstrap)),
        ("postgres", lambda: check_postgres(stack.database_url)),
        ("jaeger", lambda: check_jaeger(stack.otlp_http_url, stack.jaeger_query_url)),
    ]
    failed = 0
    for name, run in results:
        try:
            print(f"{name:<9} ok    {run()}")
        except StackError as exc:
            failed += 1
            print(f"{name:<9} FAIL  {exc}")
    peak = sum(s.peak_rss_kib for s in stack.status()) / 1024
    print(f"stack peak rss {peak:.0f} MiB")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sagaflow.devstack", description="The local Kafka + Postgres + Jaeger stack."
    )
    parser.add_argument("command", choices=["install", "up", "down", "status", "check", "certs"])
    parser.add_argument("services", nargs="*", help="only these (postgres, kafka, jaeger)")
    args = parser.parse_args(argv)
    stack = Stack()
    names = args.services or None
    try:
        if args.command == "install":
            stack.install(names)
        elif args.command == "up":
            stack.up(names)
        elif args.command == "down":
            stack.down(names)
        elif args.command == "status":
            return _status(stack)
        elif args.command == "certs":
            certs = ensure_certs(certs_dir(stack.paths))
            print(f"CA {certs.ca}; broker key and chain {certs.broker}")
        else:
            return _check(stack)
    except StackError as exc:
        print(f"devstack {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"devstack {args.command}: interrupted; run `make down` to stop whatever started",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
