"""Everything one gateway process shares between requests: backends, policies, the upstream
client, timeouts, the authentication seam and metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp

from waveidp.fleet._models import GatewayConfig, RoutingConfig
from waveidp.gateway.backends import BackendState
from waveidp.gateway.metrics import GatewayMetrics
from waveidp.gateway.routing import Policy, make_policy
from waveidp.security.transport import InputLimits

if TYPE_CHECKING:
    from waveidp.security.guard import Guard


class Gateway:
    def __init__(
        self,
        backends: Sequence[BackendState],
        guard: Guard,
        *,
        config: GatewayConfig | None = None,
        routing: RoutingConfig | None = None,
        probe_interval_s: float = 1.0,
    ) -> None:
        self.backends = list(backends)
        self.config = config or GatewayConfig()
        self.routing = routing or RoutingConfig()
        self.guard = guard
        # header count/size and JSON nesting checked on every model request (431, 400)
        self.input_limits = InputLimits(max_body_bytes=self.config.max_body_bytes)
        self.metrics = GatewayMetrics()
        self.probe_interval_s = probe_interval_s
        self.session: aiohttp.ClientSession | None = None
        self._policies: dict[str, Policy] = {}
        self._by_model: dict[str, list[BackendState]] = {}
        self.reindex()
        c = self.config
        self.plain_timeout = aiohttp.ClientTimeout(
            total=c.total_timeout_s, sock_connect=c.connect_timeout_s, sock_read=c.first_token_timeout_s
        )
        # Streams are timed by the relay itself (first token, gap between chunks, total).
        self.stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=c.connect_timeout_s)

    def reindex(self) -> None:
        """Rebuild model -> backends after discovery changed a backend's model list."""
        index: dict[str, list[BackendState]] = {}
        for b in self.backends:
            for m in sorted(b.models):
                index.setdefault(m, []).append(b)
        self._by_model = index

    def models(self) -> list[str]:
        return sorted(self._by_model)

    def serving(self, model: str) -> list[BackendState]:
        return self._by_model.get(model, [])

    def policy(self, model: str) -> Policy:
        p = self._policies.get(model)
        if p is None:
            spec = self.routing.models.get(model)
            name = spec.policy if spec else self.routing.default_policy
            p = self._policies[model] = make_policy(name, affinity=spec.affinity if spec else True)
        return p

    def ready(self) -> bool:
        now = time.monotonic()
        return any(b.routable(now) for b in self.backends if b.models)

    async def start(self) -> None:
        # One pooled session per process: keep-alive to every backend, no per-request setup.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
