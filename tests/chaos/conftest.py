"""Fixtures for the chaos and failover tests (a whole sagaflow deployment)."""

from tests.sagas import deployment

__all__ = ["deployment"]
