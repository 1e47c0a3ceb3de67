"""`estimate`: memory plan + served figures + verdict + engine flags for one request shape on one
deployment."""

from __future__ import annotations

from waveidp.errors import InputError
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._engine_flags import engine_flags
from waveidp.sizing._memory import MemoryPlan, is_stand_in, plan_llamacpp, plan_memory
from waveidp.sizing._queueing import steady_state_point
from waveidp.sizing._request import SizingRequest
from waveidp.sizing._result import DeviceMemory, Memory, Performance, SizingResult
from waveidp.sizing._roofline import PerfModel
from waveidp.sizing._verdict import judge

MAX_SEARCH_CONCURRENCY = 4096


def estimate(req: SizingRequest) -> SizingResult:
    d = req.deployment
    if req.prompt_tokens + req.output_tokens > d.context:
        raise InputError(
            f"prompt {req.prompt_tokens} + output {req.output_tokens} tokens exceed "
            f"the context of {d.context}",
            where="--context",
            fix="raise --context or shorten the request",
        )
    if d.engine == "llamacpp" and req.concurrency > d.parallel:
        d = d.model_copy(update={"parallel": req.concurrency})
    plan = plan_memory(d)
    max_conc = _max_concurrency(d, plan)
    if d.engine == "llamacpp" and not plan.fits and 0 < max_conc < d.parallel:
        # fewer slots fit: size the server llama.cpp can actually start, and say so in the verdict
        d = d.model_copy(update={"parallel": max_conc})
        plan = plan_memory(d)
    perf = PerfModel(d, plan=plan)
    running = _running_capacity(d, plan, req.prompt_tokens + req.output_tokens, max_conc)
    conc = max(1, min(req.concurrency, running)) if running else 1
    point = steady_state_point(perf, conc, req.prompt_tokens, req.output_tokens, req.arrival)
    ctx = req.prompt_tokens + req.output_tokens // 2
    step1 = perf.decode_step_seconds(conc, ctx)
    memory_bound = _decode_memory_bound(perf, conc, ctx)
    e2e = point.ttft_ms + (req.output_tokens - 1) * point.itl_ms
    performance = Performance(
        concurrency=conc,
        ttft_ms=point.ttft_ms,
        itl_ms=point.itl_ms,
        e2e_ms=round(e2e, 3),
        output_tokens_per_s=point.output_tokens_per_s,
        output_tokens_per_s_per_request=round(1000.0 / point.itl_ms, 3),
        prefill_tokens_per_s=round(req.prompt_tokens / perf.prefill_seconds(req.prompt_tokens), 3),
        decode_bound="memory" if memory_bound else "compute",
    )
    curve = [
        steady_state_point(_with_slots(perf, c), c, req.prompt_tokens, req.output_tokens, req.arrival)
        for c in _curve_points(req.concurrency, running)
    ]
    verdict, reasons = judge(d, plan, req, max_conc, running)
    kind = "memory-bound" if memory_bound else "compute-bound"
    bandwidth, compute = perf.reported_factors()
    reasons.append(
        f"decode is {kind}: {step1 * 1000:.2f} ms per step for {conc} sequence(s) "
        f"at {ctx} tokens of context ({bandwidth:.0%} of peak bandwidth, {compute:.0%} of "
        f"{'the CPU kernel table' if perf.runs_cpu_kernels else 'peak compute'} assumed)"
    )
    return SizingResult(
        verdict=verdict,
        reasons=reasons,
        model=d.model.id,
        quant=d.quant.id,
        engine=d.engine,
        devices=[h.id for h in d.devices],
        tp=d.tp,
        context=d.context,
        prompt_tokens=req.prompt_tokens,
        output_tokens=req.output_tokens,
        concurrency=req.concurrency,
        max_concurrency=max_conc,
        memory=_memory(d, plan, req.concurrency),
        performance=performance,
        curve=curve,
        engine_flags=engine_flags(d, plan, req, max_conc),
        efficiency={
            "decode_bandwidth": bandwidth,
            "prefill_compute": compute,
            "step_overhead_s": perf.step_overhead_seconds(),
            "source": perf.eff.source,
        },
    )


def _with_slots(perf: PerfModel, c: int) -> PerfModel:
    """A curve point is the server sized for it: llama.cpp with a slot per client (like the point
    `estimate` reports), not `c` clients queueing for the requested point's slots."""
    if perf.d.engine != "llamacpp" or perf.d.parallel >= c:
        return perf
    return PerfModel(perf.d.model_copy(update={"parallel": c}), perf.eff, plan=perf.plan)


def _decode_memory_bound(perf: PerfModel, c: int, ctx: int) -> bool:
    """Memory-bound when removing the compute term would not change the step time."""
    eff = perf.eff.model_copy(update={"prefill_compute": 1.0})
    roomier = PerfModel(perf.d, eff, plan=perf.plan)
    return abs(roomier.decode_step_seconds(c, ctx) - perf.decode_step_seconds(c, ctx)) < 1e-12


def _curve_points(requested: int, max_conc: int) -> list[int]:
    top = max(1, min(max_conc, 1024))
    points = {1, min(requested, top), top}
    c = 2
    while c < top:
        points.add(c)
        c *= 2
    return sorted(points)


def paged_capacity(d: Deployment, request_tokens: int) -> int | None:
    """How many requests of `request_tokens` (prompt + output) a paged engine (vLLM, TensorRT-LLM)
    runs at once; None for an engine that reserves whole slots (llama.cpp). One rule for `estimate`
    and the gateway router's slot count."""
    if not d.pages_kv:
        return None
    plan = plan_memory(d)
    return _running_capacity(d, plan, request_tokens, _max_concurrency(d, plan))


def _running_capacity(d: Deployment, plan: MemoryPlan, request_tokens: int, max_conc: int) -> int:
    """How many requests of `request_tokens` run at once. vLLM and TensorRT-LLM page the KV
    cache: a sequence takes blocks as it grows, so requests of prompt + output tokens run while
    their blocks are free (up to max-num-seqs), not only as many as could each grow to the full
    context (`max_conc`, what the verdict guarantees), and never more than max-num-seqs.
    llama.cpp reserves a slot's whole context."""
    if not d.pages_kv or not plan.fits:
        return max_conc
    blocks = -(-request_tokens // d.block_size)
    paged = plan.kv_capacity_tokens // (blocks * d.block_size)
    return min(max(max_conc, paged), d.max_num_seqs)


def _max_concurrency(d: Deployment, plan: MemoryPlan) -> int:
    if d.engine != "llamacpp":
        return plan.kv_capacity_tokens // d.context if plan.fits else 0
    ngl = d.n_gpu_layers
    if ngl is None and plan.n_gpu_layers is not None and plan.n_gpu_layers > d.model.layers:
        ngl = plan.n_gpu_layers  # fully offloaded: count the slots that fit without giving that up
    # (already split: llama.cpp may move more layers to the host to make room for more slots)

    def fits(p: int) -> bool:
        return plan_llamacpp(d.model_copy(update={"parallel": p}), ngl).fits

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= MAX_SEARCH_CONCURRENCY and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, MAX_SEARCH_CONCURRENCY + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _memory(d: Deployment, plan: MemoryPlan, concurrency: int) -> Memory:
    devices = [
        DeviceMemory(
            device="host-ram" if is_stand_in(p, d) else p.device.id,
            role=p.role,
            layers=p.layers,
            weights_bytes=p.weights_bytes,
            kv_bytes=p.kv_bytes,
            overhead_bytes=p.overhead_bytes,
            used_bytes=p.used_bytes,
            available_bytes=p.pool_bytes,
            cpu_side_bytes=p.cpu_side_bytes,
        )
        for p in plan.pools
    ]
    return Memory(
        weights_bytes=plan.weights_bytes,
        kv_bytes_per_token=plan.kv_bytes_per_token,
        kv_bytes=plan.kv_bytes,
        kv_bytes_needed=concurrency * d.context * plan.kv_bytes_per_token,
        kv_dtype=plan.kv_dtype,
        kv_capacity_tokens=plan.kv_capacity_tokens,
        overhead_bytes=plan.overhead_bytes,
        total_bytes=plan.total_bytes,
        gpu_bytes=plan.gpu_bytes,
        cpu_bytes=plan.cpu_bytes,
        available_bytes=sum(p.pool_bytes for p in plan.pools),
        devices=devices,
    )
