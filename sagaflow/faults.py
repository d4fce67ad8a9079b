"""Named fault points: places where a test may kill the process with SIGKILL, or make one call
fail once.

A fault point sits right after a commit whose aftermath must survive a crash (the provider
charged, the result is not yet published). Production never arms one: a point fires only when
the environment variable `SAGAFLOW_FAULT` names it, which only fault tests set on the processes
they start. So a test can prove the window is closed instead of hoping a random kill lands in it.

When `SAGAFLOW_FAULT_MARKER` names a file, the point appends its name there before dying, so the
test can fail if its fault never fired (a fault test that passes without its fault proves
nothing).
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "SAGAFLOW_FAULT"
"""Comma-separated names of the armed fault points, e.g. `after_charge`."""

MARKER_ENV = "SAGAFLOW_FAULT_MARKER"
"""Path of a file the firing point appends its name to before the kill."""


def armed(name: str) -> bool:
    """Whether the fault point `name` is armed in this process's environment."""
    return name in {n.strip() for n in os.environ.get(FAULT_ENV, "").split(",")}


def fault_point(name: str) -> None:
    """Kill this process at once, as `kill -9` would, when `name` is armed; else do nothing.

    The environment is read at each call rather than once at start-up so a test can arm a point
    in a child process it starts; the cost is a dictionary lookup.
    """
    if not armed(name):
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:
        # Written and synced before the kill: the test reads it after this process is gone.
        with open(marker, "a", encoding="utf-8") as f:
            f.write(f"{name}\n")
            f.flush()
            os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


def fails_once(name: str) -> bool:
    """True the first time the armed point `name` is reached, so the caller simulates a failure
    there (a delivery report that says the record was lost, say); False otherwise and always
    when unarmed.

    Needs `SAGAFLOW_FAULT_MARKER`: the marker file remembers that the point fired, which also
    makes "once" hold across restarts of the process."""
    if not armed(name):
        return False
    marker = os.environ.get(MARKER_ENV)
    if not marker:
        raise RuntimeError(f"fault point {name!r} is armed but {MARKER_ENV} is not set")
    try:
        with open(marker, encoding="utf-8") as f:
            if name in {line.strip() for line in f}:
                return False
    except FileNotFoundError:
        pass
    with open(marker, "a", encoding="utf-8") as f:
        f.write(f"{name}\n")
    return True
