"""Entry point: `python -m sagaflow_worker` / `sagaflow-worker`."""

import sys


def main() -> int:
    print("sagaflow-worker: not built yet", file=sys.stderr)  # noqa: T201
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
