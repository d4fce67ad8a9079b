"""The `sagaflow` command line: talks to Kafka and Postgres directly.

Human-readable output by default, --json for scripts. A bad argument or an unreachable service
is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

from sagaflow.cli.main import main

__all__ = ["main"]
