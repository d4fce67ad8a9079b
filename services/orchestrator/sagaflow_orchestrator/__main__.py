"""Entry point: `python -m sagaflow_orchestrator` / `sagaflow-orchestrator`."""

import sys


def main() -> int:
    print("sagaflow-orchestrator: not built yet", file=sys.stderr)  # noqa: T201
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
