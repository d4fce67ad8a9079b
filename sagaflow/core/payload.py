"""The one payload codec: how every value a workflow sees (start input, activity argument and
result, signal, error details) becomes bytes, wherever it is encoded — the API, the CLI, the
client, the workflow driver, the worker and the test kit all call `dumps`, so the same value is
the same bytes everywhere (and a start retried through another door is the same command).

Compact UTF-8 JSON, keys in the order given. This is the encoding recorded histories were
written with; it is frozen (changing it would change the bytes replay compares).
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> bytes:
    """`value` as payload bytes; TypeError when it is not JSON-serialisable."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes | str) -> Any:
    """The value of payload bytes; ValueError when they are not UTF-8 JSON."""
    return json.loads(data)
