"""How long an engine takes from start to its first answer: what routing adds to the forecast of a
backend that is not loaded (`gateway.residency`).

Before a model was ever loaded here: `ENGINE_START_S + file bytes / disk read rate`. The read rate
is measured once per filesystem (by the file's device number): up to `SAMPLE_BYTES` of a model
file read with O_DIRECT, so the page cache neither helps nor is filled (where O_DIRECT is refused,
as on tmpfs, the file's cached pages are dropped first with posix_fadvise). Once a model has been
loaded, the time that load really took is what counts (it holds the engine's own start and
warm-up, which for a 262,144-token vocabulary is most of it), kept per model file.

Both live in `WAVE_HOME/load-times.json`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import time
from pathlib import Path
from typing import Any

import orjson

from waveidp.paths import wave_home

FILE = "load-times.json"
SAMPLE_BYTES = 128 * 1024 * 1024
CHUNK = 8 * 1024 * 1024
ENGINE_START_S = 1.0  # llama-server's own start before it reads weights (CPU build, this machine: ~0.5-1 s)


def _path() -> Path:
    return wave_home() / FILE


def _read() -> dict[str, Any]:
    try:
        data = orjson.loads(_path().read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {"disks": {}, "loads": {}}
    return data if isinstance(data, dict) else {"disks": {}, "loads": {}}


def _write(data: dict[str, Any]) -> None:
    from waveidp.fleet import write_atomic

    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


def measure_read_rate(path: Path, sample_bytes: int = SAMPLE_BYTES) -> float:
    """Bytes per second reading `path` from its disk, past the page cache."""
    size = min(path.stat().st_size, sample_bytes)
    buf = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT needs
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    except OSError:
        fd = os.open(path, os.O_RDONLY)
    try:
        try:
            os.preadv(fd, [memoryview(buf)[:4096]], 0)
        except OSError:  # O_DIRECT refused on this filesystem: drop the cached pages instead
            os.close(fd)
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        started = time.perf_counter()
        done = 0
        while done < size:
            n = os.preadv(fd, [buf], done)
            if n <= 0:
                break
            done += n
        elapsed = max(time.perf_counter() - started, 1e-6)
    finally:
        os.close(fd)
        buf.close()
    return done / elapsed


def read_rate(path: Path) -> float:
    """The read rate of the disk holding `path` (measured once, then remembered)."""
    key = str(path.stat().st_dev)
    data = _read()
    known = data.get("disks", {}).get(key)
    if (
        isinstance(known, dict)
        and isinstance(known.get("bytes_per_s"), int | float)
        and known["bytes_per_s"] > 0
    ):
        return float(known["bytes_per_s"])
    rate = measure_read_rate(path)
    data.setdefault("disks", {})[key] = {
        "bytes_per_s": round(rate),
        "measured_on": str(path),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with contextlib.suppress(OSError):
        _write(data)
    return rate


def predicted_load_s(model: str, path: Path) -> float:
    """Seconds from starting an engine on `model` (its weights at `path`) until it answers."""
    seen = _read().get("loads", {}).get(model)
    if isinstance(seen, int | float) and seen > 0:
        return float(seen)
    return ENGINE_START_S + path.stat().st_size / read_rate(path)


def record_load(model: str, seconds: float) -> None:
    """How long loading `model` took, for the next prediction."""
    data = _read()
    data.setdefault("loads", {})[model] = round(seconds, 3)
    with contextlib.suppress(OSError):
        _write(data)
