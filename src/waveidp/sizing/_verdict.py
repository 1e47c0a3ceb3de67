"""The verdict (fits / tight / offload / impossible) and the sentences that add its numbers up."""

from __future__ import annotations

from waveidp.sizing._data import rules
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._memory import MemoryPlan, PoolUse, is_stand_in
from waveidp.sizing._request import SizingRequest
from waveidp.sizing._result import Verdict
from waveidp.sizing._units import gb


def _device_sentence(p: PoolUse, d: Deployment) -> str:
    if p.reserved_bytes and d.engine == "trtllm":
        return (
            f"{p.device.label}: weights {gb(p.weights_bytes)} + overhead {gb(p.overhead_bytes)}; "
            f"TensorRT-LLM gives 90% of the rest to KV ({gb(p.kv_bytes)}) = {gb(p.reserved_bytes)} "
            f"of {gb(p.pool_bytes)}"
        )
    if p.reserved_bytes:
        return (
            f"{p.device.label}: {d.gpu_memory_utilization:g} x {gb(p.device.memory_bytes)} = "
            f"{gb(p.reserved_bytes)} reserved by vLLM: weights {gb(p.weights_bytes)} + overhead "
            f"{gb(p.overhead_bytes)} leave KV {gb(p.kv_bytes)}"
        )
    layers = f" ({p.layers:g} layers)" if d.engine == "llamacpp" else ""
    shared = (
        f" (CPU and GPU share this memory: {gb(p.cpu_side_bytes)} of it is llama.cpp's CPU-side "
        "input embedding and buffers)"
        if p.role == "unified"
        else ""
    )
    return (
        f"{p.device.label}{layers}: weights {gb(p.weights_bytes)} + KV {gb(p.kv_bytes)} + overhead "
        f"{gb(p.overhead_bytes)} = {gb(p.used_bytes)} of {gb(p.pool_bytes)} usable{shared}"
    )


def judge(
    d: Deployment, plan: MemoryPlan, req: SizingRequest, max_conc: int, running: int
) -> tuple[Verdict, list[str]]:
    """The verdict and its reasons. `max_conc`: sequences that can each grow to the full context;
    `running`: requests of the sizing's length that run at once (more than `max_conc` where the
    engine pages its KV cache)."""
    pools = plan.pools
    reasons = [_device_sentence(p, d) for p in pools if p.used_bytes > 0 and not is_stand_in(p, d)]
    host_only = [p for p in pools if is_stand_in(p, d)]
    if d.engine == "llamacpp" and host_only and host_only[0].weights_bytes:
        reasons.append(
            f"host RAM: {gb(host_only[0].used_bytes)} (llama.cpp keeps the input embedding on the CPU)"
        )
    reasons += plan.problems
    tight_fraction = rules().memory.tight_fraction
    if d.context > d.model.max_context:
        msg = f"context {d.context} exceeds the model's trained maximum of {d.model.max_context}"
        if rules().engines[d.engine].refuses_long_context:
            return "impossible", [*reasons, msg + f" ({d.engine} refuses it)"]
        reasons.append(msg + " (quality degrades beyond it)")
    if not plan.fits:
        return "impossible", reasons
    if d.quant.requires_fp8 and not all(a.fp8 for a in d.accelerators):
        reasons.append(f"{d.quant.id} needs FP8 tensor cores for full speed; without them weights are upcast")
    verdict: Verdict = "fits"
    host_layers = sum(p.layers for p in plan.placements if p.role == "host" and d.host is not None)
    if d.engine == "llamacpp" and d.accelerators and host_layers > 0:
        verdict = "offload"
        reasons.append(
            f"-ngl {plan.n_gpu_layers} of {d.model.layers + 1}: {host_layers:g} layers stay in system "
            "RAM and every token crosses both memories"
        )
    paged = d.pages_kv
    if req.concurrency > running:
        if verdict == "fits":
            verdict = "tight"
        fit = (
            f"only {running} request(s) of {req.prompt_tokens + req.output_tokens} tokens fit in the KV cache"
            if paged
            else f"only {max_conc} sequence(s) of {d.context} tokens fit in the KV cache"
        )
        waiting = req.concurrency - running
        reasons.append(f"{fit}; {waiting} of {req.concurrency} concurrent requests would wait")
    elif req.concurrency > max_conc:
        if verdict == "fits":
            verdict = "tight"
        reasons.append(
            f"{req.concurrency} requests of {req.prompt_tokens + req.output_tokens} tokens fit in the KV "
            f"cache, but only {max_conc} could grow to the full {d.context} ({d.engine} takes KV blocks as a "
            "sequence grows and preempts when they run out)"
        )
    elif paged:
        reasons.append(
            f"KV cache holds {plan.kv_capacity_tokens:,} tokens = {max_conc} sequences of {d.context}"
        )
    for p in pools:
        if (
            p.pool_bytes
            and not p.reserved_bytes
            and p.used_bytes > tight_fraction * p.pool_bytes
            and not is_stand_in(p, d)
            and verdict != "offload"  # an automatic -ngl split fills the GPU on purpose
        ):
            if verdict == "fits":
                verdict = "tight"
            reasons.append(
                f"{p.device.label} is {p.used_bytes / p.pool_bytes:.0%} full "
                f"(above {tight_fraction:.0%}): little room for longer prompts or other processes"
            )
    return verdict, reasons
