"""Everything one gateway process shares between requests: backends, policies, the upstream
client, timeouts, the authentication seam and metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from waveidp.fleet.models import GatewayConfig, RoutingConfig
from waveidp.gateway.backends import BackendState
from waveidp.gateway.metrics import UNKNOWN_MODEL, GatewayMetrics
from waveidp.gateway.recent import RecentRequests
from waveidp.gateway.routing import Policy, make_policy
from waveidp.gateway.telemetry import NodeTelemetry, TelemetryMetrics
from waveidp.observe.samples import NodeSample
from waveidp.security.transport import InputLimits

if TYPE_CHECKING:
    from waveidp.errors import ApiError
    from waveidp.security.guard import Guard
    from waveidp.security.principal import Principal

# Every upstream request's headers, set once on the session (aiohttp merges per-request headers
# into them one by one). accept-encoding identity: answers are passed on as they come, and the
# client was never told of a compression the gateway asked for.
UPSTREAM_HEADERS = {
    "content-type": "application/json",
    "accept": "*/*",
    "accept-encoding": "identity",
    "user-agent": "wave-gateway",
}


def model_label(gw: Gateway, model: str, backend: str | None) -> str:
    """The `model` label of a request's metrics: a model some backend serves (or answered for), ""
    before one was read, else `UNKNOWN_MODEL`: a client's string never becomes a label of its own."""
    if not model or backend is not None or gw.serving(model):
        return model
    return UNKNOWN_MODEL


class Gateway:
    def __init__(
        self,
        backends: Sequence[BackendState],
        guard: Guard,
        *,
        config: GatewayConfig | None = None,
        routing: RoutingConfig | None = None,
        probe_interval_s: float = 1.0,
        body_limit_setting: str = "",
        telemetry: Sequence[NodeTelemetry] = (),
    ) -> None:
        self.backends = list(backends)
        self.config = config or GatewayConfig()
        # Where `config.max_body_bytes` was set, for the 413's message (`GatewaySetup`).
        self.body_limit_setting = body_limit_setting
        self.routing = routing or RoutingConfig()
        self.guard = guard
        # body size and JSON shape, checked on every model request (413, 400)
        self.input_limits = InputLimits(
            max_body_bytes=self.config.max_body_bytes,
            max_json_containers=self.config.max_json_containers,
        )
        self.metrics = GatewayMetrics()
        self.recent: RecentRequests | None = None  # the console's view of the last requests, when mounted
        guard.observer = self.metrics
        self.probe_interval_s = probe_interval_s
        # GPU/host telemetry by node, read off the request path (gateway/health.py)
        self.telemetry = {t.node: t for t in telemetry}
        if self.telemetry:
            self.metrics.add_live(TelemetryMetrics(self.telemetry, self.backends))
        self.session: aiohttp.ClientSession | None = None
        self.fresh_session: aiohttp.ClientSession | None = None  # one new connection per request
        self._policies: dict[str, Policy] = {}
        self._by_model: dict[str, list[BackendState]] = {}
        self.on_demand = False  # some backend's engine is loaded on demand (`BackendState.residency`)
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
        self.on_demand = any(b.residency is not None for b in self.backends)

    def add_backend(self, b: BackendState) -> None:
        """Serve through `b` from the next request on (a deployment's new engine)."""
        self.backends.append(b)
        self.reindex()

    def remove_backend(self, b: BackendState) -> None:
        """No new request goes to `b`; the requests in flight there finish (`b.inflight` says how
        many). Health probes of it stop."""
        if b in self.backends:
            self.backends.remove(b)
            self.reindex()
            self.metrics.forget_backend(b.name)

    def refused(
        self,
        err: ApiError,
        *,
        client: str | None,
        endpoint: str | None = None,
        principal: Principal | None = None,
        model: str = "",
        request_id: str | None = None,
        started: float | None = None,
    ) -> None:
        """Count and audit a request refused without an admission, whichever layer refused it (the
        HTTP server, a GET route, a model route's `Exchange`): the one place that does both."""
        m = self.metrics
        m.child(m.requests, model_label(self, model, None), "", str(err.status)).inc()
        self.guard.refused(
            err,
            principal=principal,
            endpoint=endpoint,
            model=model or None,
            request_id=request_id,
            started=started,
            client=client,
        )

    def models(self, visible_to: Principal | None = None) -> list[str]:
        """The models served; with `visible_to`, only those it may use (what its 404s and
        `/v1/models` show: a key learns nothing of models outside its scope)."""
        if visible_to is None:
            return sorted(self._by_model)
        return sorted(m for m in self._by_model if visible_to.may_use(m))

    def serving(self, model: str) -> list[BackendState]:
        return self._by_model.get(model, [])

    def discovering(self) -> list[BackendState]:
        """Backends whose models are not known yet (never answered `/v1/models`): any model may be
        theirs."""
        return [b for b in self.backends if b.discover_models and not b.discovered]

    def only_model(self, visible_to: Principal | None = None) -> str:
        """The model of a request that names none (tokenize, detokenize): the one model served.
        Otherwise 400, naming those `visible_to` may use."""
        models = self.models()
        if len(models) != 1:
            from waveidp.errors import ApiError

            shown = self.models(visible_to) if models else []
            raise ApiError(
                400,
                "'model' is required: this gateway serves "
                + (", ".join(shown) or ("no model you may use" if models else "no model yet")),
                code="missing_field",
                param="model",
            )
        return models[0]

    @property
    def node_samples(self) -> dict[str, NodeSample | None]:
        """Each node's current GPU/host sample by node name: None before its first read and while
        its reads fail (`telemetry[node]` keeps the last sample and says why)."""
        return {name: t.current() for name, t in self.telemetry.items()}

    def on_node(self, node: str) -> list[BackendState]:
        return [b for b in self.backends if b.node == node]

    def policy(self, model: str) -> Policy:
        p = self._policies.get(model)
        if p is None:
            spec = self.routing.models.get(model)
            name = spec.policy if spec else self.routing.default_policy
            # a request forecast to wait past the first-token timeout everywhere would time out anyway
            bound = (spec.shed_after_s if spec else None) or self.config.first_token_timeout_s
            p = self._policies[model] = (
                make_policy(name, affinity=spec.affinity, slo=spec.slo, shed_after_s=bound)
                if spec
                else make_policy(name, shed_after_s=bound)
            )
        return p

    def ready(self) -> bool:
        now = time.monotonic()
        return any(b.routable(now) for b in self.backends if b.models)

    async def start(self) -> None:
        # One pooled session per process: keep-alive to every backend, no per-request setup. Kept for
        # llama-server too (it closes after each stream, keeps plain answers alive): force_close cost
        # +7% time on plain requests at c=16, nothing on streams; `send` absorbs the stale ones.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300)
        # No cookie jar (engines set none; the jar costs a filter per request), and no
        # skip_auto_headers (aiohttp copies the headers per request when it is set): the session's
        # own headers name the user-agent, accept and accept-encoding.
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers=UPSTREAM_HEADERS,
        )
        self.fresh_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True, ttl_dns_cache=300),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers=UPSTREAM_HEADERS,
        )

    async def send(
        self, b: BackendState, method: str, url: str | URL, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        """Send on the pooled session; if the connection breaks before the answer's head arrives,
        resend once at once on a fresh connection to the same backend.

        An engine may close a kept-alive connection at any moment (llama-server closes one after
        each stream, and idle ones after 5 s); a request that meets such a stale connection gets
        `ServerDisconnectedError` or a reset before a byte of answer, which says nothing about the
        backend's health. What the resend raises is the backend's real answer: a refused connect,
        a reset on a fresh connection, a timeout. aiohttp's own resend covers GET only and may
        draw a second stale connection from the same pool. Whether the broken connection was a
        reused one is not traced (that costs every request); a fresh one that breaks gets the same
        single resend, whose failure then counts.
        """
        assert self.session is not None and self.fresh_session is not None
        try:
            return await self.session.request(method, url, **kwargs)
        except aiohttp.ClientConnectorError:
            raise
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            self.metrics.child(self.metrics.resends, b.name).inc()
            return await self.fresh_session.request(method, url, **kwargs)

    async def close(self) -> None:
        for session in (self.session, self.fresh_session):
            if session is not None:
                await session.close()
        self.session = self.fresh_session = None
