"""Session/prefix affinity by rendezvous hashing: a key maps to the same backend while the set of
healthy backends holds, and only the keys of a lost backend move when one goes away."""

from __future__ import annotations

import zlib

from waveidp.gateway.backends import BackendState


def preferred(candidates: list[BackendState], key: str) -> BackendState:
    data = key.encode("utf-8", "surrogatepass")
    return max(candidates, key=lambda b: zlib.crc32(data, zlib.crc32(b.name.encode())))
