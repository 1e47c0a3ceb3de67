"""Closed loop: N workers, each sends its next request as soon as its previous one ends.

The first wave of workers may be spread over `ramp_s` so that N simultaneous sends at t=0 do not
show up as client lag; after that each request is scheduled at the previous one's end.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from waveidp.bench.profiles.load_point import LoadPoint, Send
from waveidp.bench.profiles.timing import sleep_until
from waveidp.bench.records import RequestRecord


async def run_concurrency(
    point: LoadPoint, send: Send, stop: asyncio.Event, ramp_s: float = 0.0, grace_s: float = 30.0
) -> list[RequestRecord]:
    workers = int(point.value)
    records: list[RequestRecord] = []
    start = perf_counter()
    deadline = start + point.duration_s
    issued = 0

    async def worker(i: int) -> None:
        nonlocal issued
        scheduled = start + ramp_s * i / workers
        await sleep_until(scheduled)
        while issued < point.requests and scheduled < deadline and not stop.is_set():
            issued += 1
            record = RequestRecord(scheduled=scheduled)
            records.append(record)
            await send(record)
            scheduled = perf_counter()

    tasks = [asyncio.create_task(worker(i)) for i in range(workers)]
    await _finish(tasks, deadline + grace_s, stop)
    return records


async def _finish(tasks: list[asyncio.Task[Any]], hard_deadline: float, stop: asyncio.Event) -> None:
    """Wait for the tasks; past the hard deadline, or on stop, cancel what is still in flight."""
    pending: set[asyncio.Task[Any]] = set(tasks)
    stopper: asyncio.Task[Any] = asyncio.create_task(stop.wait())
    try:
        while pending:
            timeout = hard_deadline - perf_counter()
            if timeout <= 0 or stop.is_set():
                break
            _, pending = await asyncio.wait(
                pending | {stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stopper)
    finally:
        stopper.cancel()
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
