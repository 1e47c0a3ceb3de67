"""`wave exporter`: the node collector behind a Prometheus endpoint.

prometheus-client's own HTTP server answers scrapes from its thread; each scrape renders the
collector's last sample, so a scrape takes the same time whether NVML answers in 1 ms or hangs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from waveidp.observe.collector import NodeCollector
from waveidp.observe.exposition import NodeMetrics


@dataclass
class RunningExporter:
    collector: NodeCollector
    registry: CollectorRegistry
    port: int
    _server: Any
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.collector.close()


def stale_after(interval_s: float) -> float:
    """How old a sample may be before scrapes stop serving it as current."""
    return max(3 * interval_s, interval_s + 10.0)


def start_exporter(
    collector: NodeCollector, host: str, port: int, stale_after_s: float | None = None
) -> RunningExporter:
    """Open the collector, start sampling and serve /metrics on host:port (port 0: any free port)."""
    collector.start()
    registry = CollectorRegistry(auto_describe=False)
    limit = stale_after_s if stale_after_s is not None else stale_after(collector.interval_s)
    registry.register(NodeMetrics(collector, limit))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return RunningExporter(collector, registry, int(server.server_address[1]), server, thread)
