"""Checkout sagas whose outcome is known in advance, started through the public HTTP API and the
CLI, each retried (the same request again) until the service acknowledges it."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.sagas import order

# kind -> (closing status, ledger kinds in order)
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "complete": ("completed", ["charge"]),
    "declined": ("failed", []),
    "approval_timeout": ("failed", ["charge", "refund"]),
    "approved": ("completed", ["charge"]),
}
_WEIGHTS = {"complete": 6, "declined": 1, "approval_timeout": 2, "approved": 1}


@dataclass
class Saga:
    workflow_id: str
    kind: str
    via: str
    """'api' or 'cli': how it is started (and signalled)."""
    acknowledged_at: float | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)

    def input(self) -> dict[str, Any]:
        if self.kind == "declined":
            return order(self.workflow_id, card="tok_declined")
        if self.kind == "approval_timeout":
            return order(self.workflow_id, amount_cents=500_000, approval_timeout_s=3)
        if self.kind == "approved":
            return order(self.workflow_id, amount_cents=500_000, approval_timeout_s=3600)
        return order(self.workflow_id)


def plan(rng: random.Random, ids: Sequence[str]) -> list[Saga]:
    kinds = list(_WEIGHTS)
    weights = list(_WEIGHTS.values())
    sagas = [
        Saga(w, rng.choices(kinds, weights)[0], "api" if i % 2 == 0 else "cli")
        for i, w in enumerate(ids)
    ]
    # Every kind at least once, whatever the seed, so each expectation is exercised.
    for i, kind in enumerate(kinds[: len(sagas)]):
        sagas[i].kind = kind
    return sagas


@dataclass
class Starter:
    """Sends one saga's requests; `ports()` gives the orchestrators' HTTP ports right now."""

    env: dict[str, str]
    ports: Callable[[], list[int]]
    deadline_s: float = 120.0

    def start(self, saga: Saga) -> None:
        body = {"type": "checkout", "input": saga.input(), "id": saga.workflow_id}
        self._until_ok(saga, lambda port: self._api("/workflows", body, port), self._cli_start)
        if saga.kind == "approved":
            self._until_ok(
                saga,
                lambda port: self._api(
                    f"/workflows/{saga.workflow_id}/signals/approve", {"approved": True}, port
                ),
                self._cli_signal,
            )
        saga.acknowledged_at = time.time()

    def _until_ok(
        self, saga: Saga, api: Callable[[int], str | None], cli: Callable[[Saga], str | None]
    ) -> None:
        deadline = time.monotonic() + self.deadline_s
        while True:
            saga.attempts += 1
            if saga.via == "api":
                ports = self.ports()
                error = api(ports[saga.attempts % len(ports)])
            else:
                error = cli(saga)
            if error is None:
                return
            saga.errors.append(error[:300])
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{saga.workflow_id}: not acknowledged within {self.deadline_s:.0f}s; "
                    f"last errors: {saga.errors[-3:]}"
                )
            # A retry backoff (the service is restarting), not a synchronisation.
            time.sleep(0.5)

    def _api(self, path: str, body: dict[str, Any], port: int) -> str | None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}: {exc.read()[:200]!r}"
        except (urllib.error.URLError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if status in (200, 201, 202) else f"HTTP {status}"

    def _cli(self, args: list[str]) -> str | None:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "sagaflow.cli", *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"sagaflow {args[0]} did not finish within 60s"
        return None if done.returncode == 0 else f"exit {done.returncode}: {done.stderr[-200:]}"

    def _cli_start(self, saga: Saga) -> str | None:
        return self._cli(
            ["start", "checkout", "--id", saga.workflow_id, "--input", json.dumps(saga.input())]
        )

    def _cli_signal(self, saga: Saga) -> str | None:
        return self._cli(
            ["signal", saga.workflow_id, "approve", "--payload", json.dumps({"approved": True})]
        )
