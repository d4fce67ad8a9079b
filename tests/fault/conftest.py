"""Fixtures for tests that run a whole sagaflow deployment."""

from tests.sagas import deployment

__all__ = ["deployment"]
