"""Triton Inference Server's OpenAI-compatible frontend: `/health/ready`, queue from `nv_inference_*`."""

from __future__ import annotations

from waveidp.engines._adapter import EngineAdapter

ADAPTER = EngineAdapter(
    kind="triton",
    health_path="/health/ready",
    metrics_path="/metrics",
    running_metrics=("nv_inference_exec_count_current", "nv_inference_inflight_requests"),
    waiting_metrics=("nv_inference_pending_request_count",),
    kv_metrics=("nv_trt_llm_kv_cache_block_metrics_fraction",),
    routes=frozenset(),  # its OpenAI frontend: chat, completions, embeddings, models only
)
