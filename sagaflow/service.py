"""The entry point both services share: configuration, logging and tracing set up once, and
every set-up error turned into one line on stderr and exit code 2."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from sagaflow.config import Config, ConfigError
from sagaflow.logs import setup
from sagaflow.telemetry import Telemetry, TelemetryConfigError
from sagaflow.telemetry import from_env as telemetry_from_env

EXIT_CONFIG = 2

Serve = Callable[[Config, Telemetry], Coroutine[Any, Any, int]]


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
