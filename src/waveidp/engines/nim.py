"""NVIDIA NIM for LLMs: `/v1/health/ready`, vLLM-style gauges under `/v1/metrics` (prefix varies by build)."""

from __future__ import annotations

from waveidp.engines._adapter import EngineAdapter

ADAPTER = EngineAdapter(
    kind="nim",
    health_path="/v1/health/ready",
    metrics_path="/v1/metrics",
    running_metrics=("num_requests_running", "vllm:num_requests_running"),
    waiting_metrics=("num_requests_waiting", "vllm:num_requests_waiting"),
    kv_metrics=("gpu_cache_usage_perc", "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"),
    prefix_cache=True,
)
