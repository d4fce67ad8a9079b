"""Which consumed offsets may be committed when tasks finish out of order.

A worker runs many tasks of a partition at once; the offset it commits must never pass a task
that is still running, or a crash would lose that task. So per partition we commit up to (not
including) the oldest offset still in flight.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class _Partition:
    in_flight: list[int] = field(default_factory=list)  # heap of started offsets
    pending: set[int] = field(default_factory=set)  # started, not yet finished
    finished: set[int] = field(default_factory=set)  # finished, still in the heap
    highest_started: int = -1
    committed: int = -1  # next offset to read, as last sent to the group coordinator
    acked: int = -1  # ... as last acknowledged by it


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[int, _Partition] = {}

    def started(self, partition: int, offset: int) -> None:
        part = self._parts.setdefault(partition, _Partition())
        heapq.heappush(part.in_flight, offset)
        part.pending.add(offset)
        part.highest_started = max(part.highest_started, offset)

    def finished(self, partition: int, offset: int) -> bool:
        """Mark a task done; False when it was not being tracked (its partition was revoked
        since it started, or it was already marked)."""
        part = self._parts.get(partition)
        if part is None or offset not in part.pending:
            return False
        part.pending.discard(offset)
        part.finished.add(offset)
        return True

    def in_flight(self) -> int:
        return sum(len(p.pending) for p in self._parts.values())

    def committable(self, positions: Mapping[int, int] | None = None) -> dict[int, int]:
        """{partition: next offset to commit} for partitions whose position moved.

        `positions` are the consumer's fetch positions: a partition with nothing in flight may
        commit up to it, past the transaction markers that follow its last record (else its
        lag would never read 0)."""
        out: dict[int, int] = {}
        for pid, part in self._parts.items():
            while part.in_flight and part.in_flight[0] in part.finished:
                part.finished.discard(heapq.heappop(part.in_flight))
            if part.in_flight:
                nxt = part.in_flight[0]
            else:
                nxt = max(part.highest_started + 1, (positions or {}).get(pid, -1))
            if nxt > part.committed and part.highest_started >= 0:
                part.committed = nxt
                out[pid] = nxt
        return out

    def idle_partitions(self) -> list[int]:
        """Partitions with nothing in flight whose fetch position may have moved on."""
        return [pid for pid, part in self._parts.items() if not part.pending]

    def commit_acked(self, partition: int, offset: int) -> None:
        part = self._parts.get(partition)
        if part is not None:
            part.acked = max(part.acked, offset)

    def commit_failed(self, partition: int, offset: int) -> None:
        """An asynchronous commit of `offset` failed (a rebalance in progress, a coordinator
        move): offer the position again with the next `committable()`."""
        part = self._parts.get(partition)
        if part is not None and part.committed == offset:
            part.committed = part.acked

    def forget(self, partition: int) -> int:
        """The partition was revoked; its unfinished tasks are the next owner's. Returns how
        many were still unfinished (they no longer count as in flight here)."""
        part = self._parts.pop(partition, None)
        return len(part.pending) if part is not None else 0
