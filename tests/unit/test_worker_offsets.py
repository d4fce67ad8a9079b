"""The worker commits a partition only up to its oldest task still running."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagaflow_orchestrator import checkpoints
from sagaflow_worker.offsets import OffsetTracker

pytestmark = pytest.mark.unit


def test_out_of_order_finish_commits_only_the_contiguous_prefix() -> None:
    t = OffsetTracker()
    for off in (10, 11, 12):
        t.started(0, off)
    t.finished(0, 11)
    assert t.committable() == {0: 10}, "10 still runs: nothing past it may be committed"
    t.finished(0, 10)
    assert t.committable() == {0: 12}
    t.finished(0, 12)
    assert t.committable() == {0: 13}
    assert t.committable() == {}, "nothing new to commit"
    assert t.in_flight() == 0


def test_forgotten_partition_commits_nothing() -> None:
    t = OffsetTracker()
    t.started(3, 5)
    t.forget(3)
    t.finished(3, 5)
    assert t.committable() == {}


@given(st.permutations(list(range(30))), st.integers(0, 30))
def test_never_commits_past_a_running_task(order: list[int], done: int) -> None:
    t = OffsetTracker()
    for off in range(30):
        t.started(1, off)
    for off in order[:done]:
        t.finished(1, off)
    finished = set(order[:done])
    committed = t.committable().get(1, 0)
    assert all(off in finished for off in range(committed))
    assert committed == 30 or committed not in finished


def test_checkpoint_round_trips_through_its_schema() -> None:
    cp = checkpoints.Checkpoint("sagaflow.events", 2, 41, 97, 3, 1_700_000_000_000)
    assert checkpoints.decode(checkpoints.encode(cp)) == cp
    with pytest.raises(ValueError, match="not a sagaflow checkpoint"):
        checkpoints.decode(b"\x00garbage")


def test_a_failed_async_commit_is_offered_again() -> None:
    t = OffsetTracker()
    t.started(0, 7)
    t.finished(0, 7)
    assert t.committable() == {0: 8}
    assert t.committable() == {}, "sent, not yet answered: not offered twice"
    t.commit_failed(0, 8)
    assert t.committable() == {0: 8}, "the coordinator refused it: offered again"
    t.commit_acked(0, 8)
    t.commit_failed(0, 8)  # a late duplicate failure report changes nothing once acked
    assert t.committable() == {}


def test_an_idle_partition_commits_up_to_the_consumer_position() -> None:
    t = OffsetTracker()
    t.started(2, 4)
    assert t.idle_partitions() == []
    t.finished(2, 4)
    assert t.idle_partitions() == [2]
    # The record at 5 is the transaction's commit marker: the consumer's position is past it.
    assert t.committable({2: 6}) == {2: 6}
    t.started(2, 6)
    assert t.committable({2: 9}) == {}, "never past a task still in flight"
