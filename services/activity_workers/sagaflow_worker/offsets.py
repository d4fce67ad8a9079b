"""Which consumed offsets may be committed when tasks finish out of order.

A worker runs many tasks of a partition at once; the offset it commits must never pass a task
that is still running, or a crash would lose that task. So per partition we commit up to (not
including) the oldest offset still in flight.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass
class _Partition:
    in_flight: list[int] = field(default_factory=list)  # heap of started, unfinished offsets
    finished: set[int] = field(default_factory=set)
    highest_started: int = -1
    committed: int = -1  # next offset to read, as last committed


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[int, _Partition] = {}

    def started(self, partition: int, offset: int) -> None:
        part = self._parts.setdefault(partition, _Partition())
        heapq.heappush(part.in_flight, offset)
        part.highest_started = max(part.highest_started, offset)

    def finished(self, partition: int, offset: int) -> None:
        part = self._parts.get(partition)
        if part is not None:
            part.finished.add(offset)

    def in_flight(self) -> int:
        return sum(len(p.in_flight) - len(p.finished) for p in self._parts.values())

    def committable(self) -> dict[int, int]:
        """{partition: next offset to commit} for partitions whose position moved."""
        out: dict[int, int] = {}
        for pid, part in self._parts.items():
            while part.in_flight and part.in_flight[0] in part.finished:
                part.finished.discard(heapq.heappop(part.in_flight))
            nxt = part.in_flight[0] if part.in_flight else part.highest_started + 1
            if nxt > part.committed and part.highest_started >= 0:
                part.committed = nxt
                out[pid] = nxt
        return out

    def forget(self, partition: int) -> None:
        """The partition was revoked; its unfinished tasks are the next owner's."""
        self._parts.pop(partition, None)
