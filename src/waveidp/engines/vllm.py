"""vLLM's OpenAI server: `/health`, Prometheus `/metrics` with `vllm:` gauges, automatic prefix caching,
and the routes of `vllm serve` beyond chat (no `/v1/audio/speech`)."""

from __future__ import annotations

from waveidp.engines._adapter import EngineAdapter
from waveidp.protocols.routes import API_ROUTES

ADAPTER = EngineAdapter(
    kind="vllm",
    health_path="/health",
    metrics_path="/metrics",
    running_metrics=("vllm:num_requests_running",),
    waiting_metrics=("vllm:num_requests_waiting",),
    # renamed in vLLM 0.10 (V1 engine); both are a 0..1 fraction despite the "perc"
    kv_metrics=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    prefix_cache=True,
    # vLLM's documented OpenAI server routes (recent releases): Responses with retrieve and
    # cancel, Anthropic's Messages with count_tokens, rerank/score, tokenize, Whisper audio.
    routes=API_ROUTES - {"speech"},
    keeps_responses=True,
)
