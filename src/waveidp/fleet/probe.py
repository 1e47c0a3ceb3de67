"""A short memory-bandwidth probe: how many bytes per second one core, then all cores, stream in.

Decode on a CPU reads every weight once per token, so this is the number that bounds it where a
catalog entry cannot say (an unknown CPU, a VM, a board with other memory). Each core runs its
own Python process (numpy's one-thread BLAS dot product over two arrays well beyond the caches);
the processes start reading at the same instant and read for a fixed time. About 2 seconds. One
core's figure counts the reader's CPU time, so a busy machine's other processes do not lower it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

from waveidp.errors import WaveError

_MIB = 1024**2


@dataclass(frozen=True)
class Bandwidth:
    """Streaming-read rates measured on the machine, bytes per second."""

    all_cores: float
    one_core: float


# One reader: allocate, warm up, wait for the common start, then read for `seconds`; print bytes/s.
_WORKER = """
import sys, time
import numpy as np
mib, start, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
a = np.ones(mib * 1024 * 1024 // 8, dtype=np.float32)
b = np.ones_like(a)
np.dot(a, b)
while time.time() < start:
    time.sleep(0.001)
t0, c0 = time.perf_counter(), time.process_time()
n = 0
while True:
    np.dot(a, b)
    n += 1
    t = time.perf_counter() - t0
    if t >= seconds:
        break
print(n * 2 * a.nbytes / t, n * 2 * a.nbytes / max(time.process_time() - c0, 1e-9))
"""


def _readers(count: int, mib: int, seconds: float) -> tuple[float, float]:
    """(bytes/s all readers streamed together by the wall clock, the same by each one's CPU time)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.time() + 0.5 + 0.1 * count  # every process allocated and warm by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(mib), str(start), str(seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    wall = cpu = 0.0
    for p in procs:
        out, err = p.communicate(timeout=60)
        if p.returncode != 0:
            raise WaveError(f"memory bandwidth probe failed: {err.strip().splitlines()[-1:] or p.returncode}")
        by_wall, by_cpu = map(float, out.split())
        wall += by_wall
        cpu += by_cpu
    return wall, cpu


def measure_bandwidth(cores: int, *, seconds: float = 0.4, l3_mib: float | None = None) -> Bandwidth:
    """Bytes per second one core streams, then `cores` cores together (each its own process)."""
    cores = max(1, min(cores, os.cpu_count() or cores))
    per_reader = int(max(64, min(512, 4 * (l3_mib or 32) / cores)))
    # one core by its CPU time, so other processes' time slices on a shared machine do not count;
    # all cores together by the wall clock (what they stream at once is the point)
    _, one = _readers(1, max(per_reader, 256), seconds)
    every = _readers(cores, per_reader, seconds)[0] if cores > 1 else one
    return Bandwidth(all_cores=max(every, one), one_core=one)
