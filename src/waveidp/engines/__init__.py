"""Engine adapters: one module per engine kind, looked up by the fleet file's `engine` value.

from waveidp.engines import adapter
adapter("vllm").parse_metrics(text).waiting
"""

from __future__ import annotations

from waveidp.engines import llamacpp, nim, ollama, openai, triton, vllm
from waveidp.engines._adapter import EngineAdapter, EngineLoad

# Kinds without their own module speak like one that has one: the embedded engine *is* llama-server,
# `wave emulate` exports vLLM's metric names, trtllm-serve and transformers serve plain OpenAI.
_ADAPTERS: dict[str, EngineAdapter] = {
    "vllm": vllm.ADAPTER,
    "llamacpp": llamacpp.ADAPTER,
    "embedded": llamacpp.ADAPTER,
    "triton": triton.ADAPTER,
    "nim": nim.ADAPTER,
    "ollama": ollama.ADAPTER,
    "openai": openai.ADAPTER,
    "trtllm": openai.ADAPTER,
    "transformers": openai.ADAPTER,
    "emulated": vllm.ADAPTER,
}


def adapter(kind: str) -> EngineAdapter:
    try:
        return _ADAPTERS[kind]
    except KeyError:
        from waveidp.errors import NotFoundError

        raise NotFoundError("engine kind", kind, _ADAPTERS) from None


def detect(metrics_text: str) -> EngineAdapter:
    """The adapter whose metric names a `/metrics` page uses; the generic one if none match."""
    for a in (vllm.ADAPTER, llamacpp.ADAPTER, nim.ADAPTER, triton.ADAPTER):
        if a.recognises(metrics_text):
            return a
    return openai.ADAPTER


__all__ = ["EngineAdapter", "EngineLoad", "adapter", "detect"]
