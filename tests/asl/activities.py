"""Activities the state-machine tests call (`--activities tests.asl.activities:registry`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sagaflow.workflow import ActivityContext, ApplicationError, Registry

registry = Registry()

calls: Counter[str] = Counter()
"""How often each `key` was seen by `flaky` (tests use a fresh key each)."""
tokens: list[str] = []
"""Task tokens handed to `remember_token`, newest last."""
seen: list[dict[str, Any]] = []
"""(activity, idempotency key, argument) of every `echo` call."""


@registry.activity(name="echo", task_queue="asl-tests")
def echo(ctx: ActivityContext, arg: Any) -> Any:
    seen.append({"key": ctx.idempotency_key, "arg": arg})
    return arg


@registry.activity(name="add", task_queue="asl-tests")
def add(ctx: ActivityContext, arg: dict[str, Any]) -> Any:
    return arg["a"] + arg["b"]


@registry.activity(name="fail", task_queue="asl-tests")
def fail(ctx: ActivityContext, arg: dict[str, Any]) -> Any:
    raise ApplicationError(arg.get("cause", "it failed"), type=arg.get("error", "Boom"))


@registry.activity(name="crash", task_queue="asl-tests")
def crash(ctx: ActivityContext, arg: Any) -> Any:
    raise ValueError("not a number")


@registry.activity(name="flaky", task_queue="asl-tests")
def flaky(ctx: ActivityContext, arg: dict[str, Any]) -> Any:
    """Fails with `error` the first `failures` times it is called for `key`."""
    calls[arg["key"]] += 1
    if calls[arg["key"]] <= arg["failures"]:
        raise ApplicationError(f"attempt {calls[arg['key']]}", type=arg.get("error", "Flaky"))
    return {"calls": calls[arg["key"]]}


@registry.activity(name="remember_token", task_queue="asl-tests")
def remember_token(ctx: ActivityContext, arg: dict[str, Any]) -> Any:
    tokens.append(arg["token"])
    return None
