"""Process-wide logging set-up for the services and the CLI."""

from __future__ import annotations

import logging


def setup(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # librdkafka's own chatter is already summarised by our error triage
    logging.getLogger("confluent_kafka").setLevel(logging.WARNING)
