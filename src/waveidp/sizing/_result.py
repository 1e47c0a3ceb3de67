"""What `estimate` answers (`wave size --json`): verdict, memory per device, served figures, flags."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Verdict = Literal["fits", "tight", "offload", "impossible"]


class DeviceMemory(BaseModel):
    device: str
    role: str
    layers: float
    weights_bytes: int
    kv_bytes: int
    overhead_bytes: int
    used_bytes: int
    available_bytes: int
    cpu_side_bytes: int = Field(
        default=0, description="on unified memory: the part of used_bytes that llama.cpp keeps CPU-side"
    )


class Memory(BaseModel):
    weights_bytes: int
    kv_bytes_per_token: int
    kv_bytes: int
    kv_bytes_needed: int = Field(description="KV of `concurrency` sequences of `context` tokens")
    kv_dtype: str
    kv_capacity_tokens: int
    overhead_bytes: int
    total_bytes: int
    gpu_bytes: int
    cpu_bytes: int
    available_bytes: int
    devices: list[DeviceMemory]


class Performance(BaseModel):
    concurrency: int = Field(description="sequences decoded together (requested, capped at max_concurrency)")
    ttft_ms: float
    itl_ms: float
    e2e_ms: float
    output_tokens_per_s: float = Field(description="all concurrent requests together")
    output_tokens_per_s_per_request: float
    prefill_tokens_per_s: float
    decode_bound: Literal["memory", "compute"]


class CurvePoint(BaseModel):
    concurrency: int
    ttft_ms: float
    itl_ms: float
    output_tokens_per_s: float


class SizingResult(BaseModel):
    verdict: Verdict
    reasons: list[str]
    model: str
    quant: str
    engine: str
    devices: list[str]
    tp: int
    context: int
    prompt_tokens: int
    output_tokens: int
    concurrency: int
    max_concurrency: int
    memory: Memory
    performance: Performance
    curve: list[CurvePoint]
    engine_flags: dict[str, str | int | float]
    efficiency: dict[str, float | str]
