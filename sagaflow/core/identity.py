"""Derived identity and deterministic randomness: nothing here reads a clock or the OS.

Run ids and random seeds are hashes of what is already in history, so a rebuild derives the
same values; workflow randomness is a splitmix64 stream seeded from the recorded seed.
"""

from __future__ import annotations

import hashlib
import json

_MASK64 = (1 << 64) - 1


def derive_run_id(workflow_id: str, started_seq: int) -> str:
    """The run id of the run whose WorkflowStarted has seq `started_seq`."""
    digest = hashlib.sha256(f"run\x00{workflow_id}\x00{started_seq}".encode()).hexdigest()
    return digest[:32]


def start_command_id(
    workflow_id: str, workflow_type: str, version: int | None, input: bytes
) -> str:
    """The command_id of a StartWorkflow, derived from what it starts: every sender (client
    library, API, CLI) that repeats the same start sends the same command, which the engine
    answers as already started, while a different start for the same id gets another
    command_id and is refused as a duplicate. The input is hashed as received (bytes)."""
    head = json.dumps([workflow_id, workflow_type, version], separators=(",", ":"))
    digest = hashlib.sha256(head.encode() + b"\x00" + input).hexdigest()
    return f"start:{digest[:40]}"


def derive_random_seed(workflow_id: str, run_id: str) -> int:
    """A non-negative 63-bit seed (fits an Avro long) for ctx.random() and ctx.uuid4()."""
    digest = hashlib.sha256(f"seed\x00{workflow_id}\x00{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class SplitMix64:
    """A tiny, fast, well-distributed PRNG (Steele et al.); its whole state is one integer."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK64

    def next_u64(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def random(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def uuid4(self) -> str:
        """An RFC 4122 version-4 UUID string built from 128 generated bits."""
        value = (self.next_u64() << 64) | self.next_u64()
        value &= ~(0xF000 << 64)
        value |= 0x4000 << 64  # version 4
        value &= ~(0xC000 << 48)
        value |= 0x8000 << 48  # RFC 4122 variant
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
