"""Task tokens for `.waitForTaskToken` tasks, and the signals that answer them.

A token names the execution (workflow id) and the signal the waiting Task state listens on, so
SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat become an ordinary workflow signal: waiting
costs nothing, and the answer is recorded in history like any signal.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from sagaflow.workflow import SagaflowError

SIGNAL_PREFIX = "asl.task-token."


class TaskTokenError(SagaflowError):
    """A string that is not a sagaflow task token."""


@dataclass(frozen=True)
class TaskToken:
    workflow_id: str
    signal: str

    def encode(self) -> str:
        raw = json.dumps({"w": self.workflow_id, "s": self.signal}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> TaskToken:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            token_obj = cls(str(data["w"]), str(data["s"]))
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise TaskTokenError(
                f"{token[:40]!r} is not a sagaflow task token; pass the token the Task state "
                "handed to its activity (context object $$.Task.Token)"
            ) from exc
        if not token_obj.signal.startswith(SIGNAL_PREFIX):
            raise TaskTokenError(f"{token[:40]!r} is not a sagaflow task token")
        return token_obj


def success(output: Any) -> dict[str, Any]:
    """The signal payload of SendTaskSuccess."""
    return {"kind": "success", "output": output}


def failure(error: str | None, cause: str | None) -> dict[str, Any]:
    """The signal payload of SendTaskFailure."""
    return {"kind": "failure", "error": error, "cause": cause}


def heartbeat() -> dict[str, Any]:
    """The signal payload of SendTaskHeartbeat."""
    return {"kind": "heartbeat"}
