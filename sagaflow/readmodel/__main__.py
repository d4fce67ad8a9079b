"""`python -m sagaflow.readmodel`: the projector as a process of its own.

SIGTERM/SIGINT finish the batch in hand (its Postgres transaction and offset commit) and exit
0; a fatal Kafka error or a missing topic exits 3 so the platform restarts the process. Postgres
or the broker going away is waited out (the projector retries with backoff), never an exit.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from sagaflow.config import Config, ConfigError
from sagaflow.kafka.triage import FatalKafkaError
from sagaflow.logs import setup
from sagaflow.readmodel.projector import Projector, ProjectorError

log = logging.getLogger("sagaflow.readmodel")

EXIT_FATAL = 3


def main() -> int:
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"sagaflow-projector: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    setup(config.log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        Projector(config, group_id=config.projector_group).run(stop)
    except (FatalKafkaError, ProjectorError) as exc:
        log.error("%s", exc)
        return EXIT_FATAL
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
