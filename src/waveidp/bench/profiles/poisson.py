"""Open loop: requests arrive as a Poisson process of the given rate, whatever the server does.

Arrival times are drawn up front from a seeded RNG; each request's timer starts at its arrival
time, so a slow server (or a slow client) shows up in the latencies instead of hiding them.
"""

from __future__ import annotations

import asyncio
import random
from time import perf_counter

from waveidp.bench.profiles.concurrency import _finish
from waveidp.bench.profiles.load_point import LoadPoint, Send
from waveidp.bench.profiles.timing import sleep_until
from waveidp.bench.records import RequestRecord


def arrival_offsets(rate: float, count: int, duration_s: float, seed: int) -> list[float]:
    """Offsets (s) from the start: cumulative exponential gaps, first request at 0, within duration."""
    rng = random.Random(seed)
    offsets, t = [], 0.0
    for _ in range(count):
        if t > duration_s:
            break
        offsets.append(t)
        t += rng.expovariate(rate)
    return offsets


async def run_poisson(
    point: LoadPoint, send: Send, stop: asyncio.Event, seed: int = 0, grace_s: float = 30.0
) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    tasks: list[asyncio.Task[None]] = []
    offsets = arrival_offsets(point.value, point.requests, point.duration_s, seed)
    start = perf_counter() + 0.005
    for off in offsets:
        scheduled = start + off
        await sleep_until(scheduled)
        if stop.is_set():
            break
        record = RequestRecord(scheduled=scheduled)
        records.append(record)
        tasks.append(asyncio.create_task(send(record)))
    await _finish(tasks, start + point.duration_s + grace_s, stop)
    return records
