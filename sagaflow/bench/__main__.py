"""`make bench`: every benchmark in one run; numbers, not pass/fail.

1. the pure core: workflow decisions per second on one core (sagaflow.bench.core);
2. the whole system on the local stack: sagas per second, step latency, rebuild and restart
   time (sagaflow.bench.saga).
Results land in bench-results/ as JSON and PNG.
"""

from __future__ import annotations

import sys

from sagaflow.bench import core, saga


def main() -> int:
    print("######## core: decisions per second")
    core.main([])
    print("\n######## system: sagas on Kafka and Postgres")
    return saga.main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
