"""`make bench`: every benchmark in one run; numbers, not pass/fail.

1. the pure core: workflow decisions per second on one core (sagaflow.bench.core);
2. the whole system on the local stack against a raw Kafka loop: throughput, latency, CPU per
   step and waiting workflows (sagaflow.bench.saga; `--help` lists its knobs, `--quick` is a
   short run).
Results land in bench-results/ as JSON and PNG.
"""

from __future__ import annotations

import sys

from sagaflow.bench import core, saga


def main(argv: list[str]) -> int:
    args = saga.parser().parse_args(argv)
    print("######## core: decisions per second", flush=True)
    core_args = ["--out", str(args.out / "core.json")]
    core.main([*core_args, "--sagas", "2000", "--repeat", "1"] if args.quick else core_args)
    print("\n######## system: sagas on Kafka and Postgres, against a raw Kafka loop", flush=True)
    return saga.main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
