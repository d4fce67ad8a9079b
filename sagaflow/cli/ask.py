"""`sagaflow query` and `sagaflow update`: ask a workflow and wait for its answer.

The request goes to the commands topic keyed by the workflow id, so the orchestrator that owns
the workflow answers it; the answer comes back on the replies topic keyed by the request id.
Exit 0 with the answer, 1 when the query or update failed or was rejected (the message says
why), 124 when no answer came in time, 3 when Kafka cannot be reached.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from sagaflow.cli.commands import _check_size, _client, _delivery_failed, _telemetry
from sagaflow.cli.commands import parse_json_arg as _json_arg
from sagaflow.cli.output import (
    EXIT_FAILED,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    CliError,
    emit,
    payload_value,
)
from sagaflow.client import DeliveryError, ReplyTimeoutError, payload
from sagaflow.config import Config
from sagaflow.core.interactions import REJECTIONS
from sagaflow.core.messages import ReplyToCaller
from sagaflow.kafka.logread import LogReadError


def cmd_query(config: Config, args: argparse.Namespace) -> int:
    value = _json_arg("ARGS", args.args) if args.args is not None else None
    _check_size(config, "ARGS", payload(value))
    with _telemetry() as tel:
        client, _ = _client(config, tel)
        reply = _asking(lambda: client.query(args.id, args.name, value, timeout_s=args.timeout))
    return _report(args, "query", reply)


def cmd_update(config: Config, args: argparse.Namespace) -> int:
    value = _json_arg("ARGS", args.args)
    _check_size(config, "ARGS", payload(value))
    with _telemetry() as tel:
        client, _ = _client(config, tel)
        reply = _asking(
            lambda: client.update(
                args.id, args.name, value, update_id=args.update_id or "", timeout_s=args.timeout
            )
        )
    return _report(args, "update", reply)


def _asking(ask: Callable[[], ReplyToCaller]) -> ReplyToCaller:
    try:
        reply = ask()
    except DeliveryError as exc:
        raise _delivery_failed(exc) from exc
    except ReplyTimeoutError as exc:
        raise CliError(f"{exc}; raise --timeout if it is just slow", EXIT_TIMEOUT) from exc
    except LogReadError as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from exc
    return reply


def _report(args: argparse.Namespace, kind: str, reply: ReplyToCaller) -> int:
    data: dict[str, Any] = {
        "workflow_id": args.id,
        kind: args.name,
        "outcome": "ok",
        "result": payload_value(reply.result),
    }
    if kind == "update" and args.update_id:
        data["update_id"] = args.update_id
    if not reply.ok:
        data["outcome"] = "rejected" if reply.error_type in REJECTIONS else "failed"
        data["error"] = {"type": reply.error_type, "message": reply.message}
        if not getattr(args, "json", False):
            raise CliError(
                f"{kind} {args.name!r} of {args.id} {data['outcome']}: "
                f"{reply.error_type}: {reply.message}",
                EXIT_FAILED,
            )
        emit(args, data, "")
        return EXIT_FAILED
    emit(args, data, json.dumps(data["result"], indent=2, sort_keys=True))
    return 0
