"""Fixtures for the chaos and failover tests (a whole sagaflow deployment), and their place in
the session: last, because the chaos run kills and restarts the shared broker and Postgres, and
every other test should meet them as they were started."""

from pathlib import Path

import pytest

from tests.sagas import deployment

__all__ = ["deployment"]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: the other tests keep their order, the chaos tests go after them.
    items.sort(key=lambda item: item.path.is_relative_to(_HERE))
