"""The engine command-line flags that make a server match a sizing."""

from __future__ import annotations

from waveidp.sizing._data import rules
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._memory import MemoryPlan
from waveidp.sizing._request import SizingRequest


def engine_flags(
    d: Deployment, plan: MemoryPlan, req: SizingRequest, max_conc: int
) -> dict[str, str | int | float]:
    """Command-line flags that make the engine match this sizing."""
    per_request = req.prompt_tokens + req.output_tokens
    seqs = max(1, min(plan.kv_capacity_tokens // per_request, max(256, req.concurrency)))
    flags: dict[str, str | int | float] = {}
    if d.engine == "vllm":
        flags = {
            "--max-model-len": d.context,
            "--max-num-seqs": seqs,
            "--gpu-memory-utilization": d.gpu_memory_utilization,
            "--tensor-parallel-size": d.tp,
        }
        if d.kv_dtype and d.kv_dtype != "auto":
            flags["--kv-cache-dtype"] = d.kv_dtype
        if d.block_size != 16:
            flags["--block-size"] = d.block_size
    elif d.engine == "llamacpp":
        flags = {
            "-ngl": plan.n_gpu_layers if plan.n_gpu_layers is not None else 0,
            "-c": plan.n_ctx or d.context,
            "-np": d.parallel,
        }
        if plan.kv_dtype not in ("f16", "fp16"):
            flags["--cache-type-k"] = plan.kv_dtype
            flags["--cache-type-v"] = plan.kv_dtype
        if d.threads:
            flags["-t"] = d.threads
        if not d.prompt_cache:
            flags["--cache-ram"] = 0
    elif d.engine == "trtllm":
        flags = {
            "--max_seq_len": d.context,
            "--max_batch_size": seqs,
            "--tp_size": d.tp,
            "--kv_cache_free_gpu_memory_fraction": rules().engines["trtllm"].free_gpu_memory_fraction or 0.9,
        }
    else:
        flags = {"max_length": d.context}
    return flags
