"""sagaflow: durable workflows and sagas on a Kafka log."""

__version__ = "0.1.0"
