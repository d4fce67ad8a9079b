"""The entry point both services share: configuration, logging and tracing set up once, and
every set-up error turned into one line on stderr and exit code 2."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sagaflow.config import Config, ConfigError
from sagaflow.logs import setup
from sagaflow.telemetry import Telemetry, TelemetryConfigError
from sagaflow.telemetry import from_env as telemetry_from_env

EXIT_CONFIG = 2

Serve = Callable[[Config, Telemetry], Coroutine[Any, Any, int]]
T = TypeVar("T")


def in_thread(name: str, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run a long-lived loop (a Kafka consumer's) on a thread of its own, not in asyncio's
    default pool: short blocking calls and synchronous activities use pools, and a pool that
    long-lived loops fill starves them. The future gets the loop's result or exception."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def main() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
            return
        loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=main, name=name, daemon=True).start()
    return done


def run_service(name: str, serve: Serve) -> int:
    """Run `serve(config, telemetry)` to completion as the process `name`; its exit code."""
    try:
        config = Config.from_env()
        setup(config.log_level)
        tracing = telemetry_from_env(name)
    except (ConfigError, TelemetryConfigError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_CONFIG
    try:
        return asyncio.run(serve(config, tracing))
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_CONFIG
    finally:
        tracing.shutdown()  # exports the spans still buffered
