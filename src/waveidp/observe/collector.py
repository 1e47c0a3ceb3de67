"""The node collector: reads every source on an interval in its own thread and keeps the last sample.

Readers of the sample (the exporter's HTTP handler, the bench, the gateway) never touch a device:
a slow or hung NVML call delays the next sample, not a scrape. Sources that are not there (no
NVML, no tegrastats, no readable RAPL) are recorded as absent once, at open.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from waveidp.observe.host import HostReader
from waveidp.observe.nvml import NvmlReader
from waveidp.observe.samples import GpuSample, JetsonSample, NodeSample, SourceState
from waveidp.observe.tegrastats import TegrastatsReader

log = logging.getLogger("waveidp.observe")
T = TypeVar("T")


class NodeCollector:
    def __init__(
        self,
        interval_s: float = 5.0,
        *,
        nvml: NvmlReader | None = None,
        tegrastats: TegrastatsReader | None = None,
        host: HostReader | None = None,
        gpu: bool = True,
        on_sample: Callable[[NodeSample], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.gpu = gpu
        self.nvml = nvml if nvml is not None else NvmlReader()
        self.tegrastats = tegrastats if tegrastats is not None else TegrastatsReader(interval_s=interval_s)
        self.host = host if host is not None else HostReader()
        self.on_sample = on_sample
        self.hostname = socket.gethostname()
        self.sources: dict[str, SourceState] = {}
        self.samples_taken = 0
        self.read_errors: dict[str, int] = {}
        self._latest: NodeSample | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> NodeSample:
        """Find the sources and take the first sample (synchronously)."""
        host, rapl = self.host.open()
        self.sources = {"host": host, "rapl": rapl}
        if self.gpu:
            self.sources["nvml"] = self.nvml.open()
            self.sources["tegrastats"] = self.tegrastats.open()
        else:
            off = SourceState(False, "GPU sources turned off (--no-gpu)")
            self.sources["nvml"] = self.sources["tegrastats"] = off
        for name, state in self.sources.items():
            log.info("%s: %s%s", name, "in use" if state.available else "absent", f" ({state.detail})")
        return self.sample()

    def sample(self) -> NodeSample:
        """Read every available source now (blocking) and make it the latest sample."""
        t0 = time.perf_counter()
        host = self._guard("host", self.host.read) if self.sources["host"].available else None
        gpus: list[GpuSample] = []
        jetson: JetsonSample | None = None
        if self.sources["nvml"].available:
            gpus += self._guard("nvml", self.nvml.read) or []
        if self.sources["tegrastats"].available:
            got = self._guard("tegrastats", self.tegrastats.read)
            if got is not None:
                gpus.append(got[0])
                jetson = got[1]
        s = NodeSample(
            taken_at=time.time(),
            duration_s=time.perf_counter() - t0,
            hostname=self.hostname,
            driver_version=self.nvml.driver_version,
            host=host,
            gpus=tuple(gpus),
            jetson=jetson,
            sources=dict(self.sources),
        )
        self._latest = s
        self.samples_taken += 1
        if self.on_sample is not None:
            self.on_sample(s)
        return s

    def _guard(self, source: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except Exception:  # one bad read must not end the collector; it is counted and logged
            self.read_errors[source] = self.read_errors.get(source, 0) + 1
            log.exception("reading %s failed", source)
            return None

    def latest(self) -> NodeSample | None:
        return self._latest

    def start(self) -> None:
        """Open (unless already open) and sample every interval_s in a daemon thread."""
        if not self.sources:
            self.open()
        self._thread = threading.Thread(target=self._loop, name="wave-collector", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        """Stop sampling; the sources stay open (`sample()` still works) until close()."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.interval_s, 5.0) + 5.0)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.tegrastats.close()
        self.nvml.close()
