"""What the gateway needs to know about one engine kind: where its health and load live.

An adapter is data plus one pure function (`parse_metrics`): the gateway's health loop fetches
the URLs, the adapter turns the Prometheus text into an `EngineLoad`. Metric names differ by
engine (and by engine version), so each adapter lists the names it accepts, first match wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_EVERY_ENGINE = frozenset({"chat", "completions", "embeddings"})


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """Load read from an engine's metrics; None where the engine does not say."""

    running: float | None = None
    waiting: float | None = None
    kv_usage: float | None = None  # fraction 0..1 of the KV cache in use

    @property
    def queued(self) -> float:
        return (self.running or 0.0) + (self.waiting or 0.0)


@dataclass(frozen=True, slots=True)
class EngineAdapter:
    kind: str
    health_path: str = "/health"
    metrics_path: str | None = "/metrics"
    running_metrics: tuple[str, ...] = ()
    waiting_metrics: tuple[str, ...] = ()
    kv_metrics: tuple[str, ...] = ()
    # Accepts `stream_options: {"include_usage": true}` (then the gateway asks for usage itself).
    stream_usage: bool = True
    # Reuses the KV cache of a shared prompt prefix, so session affinity pays off.
    prefix_cache: bool = False
    # The API routes it serves beyond chat, completions, embeddings and models, by the gateway's
    # endpoint names (`waveidp.gateway.request_info.PATHS`); None: not known (a generic OpenAI
    # server), so everything is passed on and its own 404 answers. Responses and Messages are
    # translated to chat completions where absent.
    routes: frozenset[str] | None = None
    # Keeps created responses, so `GET /v1/responses/{id}` (and cancel) go to it.
    keeps_responses: bool = False

    def serves(self, endpoint: str) -> bool:
        """Whether a request for `endpoint` may be sent to it as it is."""
        return self.routes is None or endpoint in self.routes or endpoint in _EVERY_ENGINE

    def health_url(self, root: str) -> str:
        return root + self.health_path

    def metrics_url(self, root: str) -> str | None:
        return root + self.metrics_path if self.metrics_path else None

    def parse_metrics(self, text: str) -> EngineLoad:
        """Sum each wanted gauge over its label sets (vLLM labels by model name)."""
        wanted = {*self.running_metrics, *self.waiting_metrics, *self.kv_metrics}
        if not wanted:
            return EngineLoad()
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name in wanted:
                values[family.name] = sum(s.value for s in family.samples if s.name == family.name)
        return EngineLoad(
            running=_first(values, self.running_metrics),
            waiting=_first(values, self.waiting_metrics),
            kv_usage=_first(values, self.kv_metrics),
        )

    def recognises(self, text: str) -> bool:
        """Whether a /metrics page looks like this engine's (used to detect `--upstream` kinds)."""
        names = [*self.running_metrics, *self.waiting_metrics]
        return bool(names) and any(n in text for n in names)


def _first(values: dict[str, float], names: Iterable[str]) -> float | None:
    for n in names:
        if n in values:
            return values[n]
    return None
