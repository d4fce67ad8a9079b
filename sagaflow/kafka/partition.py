"""Where a key lands among a topic's partitions, computed without a producer.

Every producer of sagaflow partitions with librdkafka's `murmur2_random`, which is Java's
murmur2 partitioner, so Java and Python producers put a workflow's commands in one place. The
one place that must compute a partition itself is a reader that knows a workflow id and no
record (a workflow's history, the orchestrator checking that a command sits where its workflow
lives); it uses this function, tested against vectors from Kafka's own Java client.
"""

from __future__ import annotations

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java `Utils.murmur2`), as a signed 32-bit int like Java returns.

    librdkafka's `murmur2_random` partitioner uses the same function, so this is where a
    sagaflow producer in either language puts a key.
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    end = length - length % 4
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = (h * _M) & _MASK32
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of `key` among `partitions` (Java `toPositive(murmur2(key)) % n`)."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
