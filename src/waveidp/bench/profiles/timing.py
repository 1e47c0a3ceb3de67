"""Precise waits: asyncio timers fire up to ~1 ms late (millisecond selector timeouts), so sleep to
just before the target and yield to the loop for the rest."""

from __future__ import annotations

import asyncio
from time import perf_counter

_SPIN_S = 0.0015


async def sleep_until(t: float) -> None:
    delay = t - perf_counter() - _SPIN_S
    if delay > 0:
        await asyncio.sleep(delay)
    while perf_counter() < t:
        await asyncio.sleep(0)
