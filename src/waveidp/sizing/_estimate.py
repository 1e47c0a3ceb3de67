"""`estimate`: memory plan + roofline timing + verdict for one request shape on one deployment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from waveidp.errors import InputError
from waveidp.sizing._data import rules
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._memory import MemoryPlan, PoolUse, plan_llamacpp, plan_memory
from waveidp.sizing._roofline import PerfModel
from waveidp.sizing._schedule import ROUNDS, ClosedLoop, simulate

Verdict = Literal["fits", "tight", "offload", "impossible"]
MAX_SEARCH_CONCURRENCY = 4096


class SizingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: Deployment
    prompt_tokens: int = Field(default=512, ge=1, le=10_000_000)
    output_tokens: int = Field(default=256, ge=1, le=10_000_000)
    concurrency: int = Field(default=1, ge=1, le=100_000)
    arrival: Literal["burst", "steady"] = Field(
        default="burst",
        description="burst: the clients start together (wave bench's default); steady: spread out",
    )


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
    conc = max(1, min(req.concurrency, max_conc)) if max_conc else 1
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
        for c in _curve_points(req.concurrency, max_conc)
    ]
    verdict, reasons = _verdict(d, plan, req, max_conc)
    kind = "memory-bound" if memory_bound else "compute-bound"
    reasons.append(
        f"decode is {kind}: {step1 * 1000:.2f} ms per step for {conc} sequence(s) "
        f"at {ctx} tokens of context ({perf.eff.decode_bandwidth_for(d.quant.id):.0%} of peak bandwidth, "
        f"{perf.eff.prefill_compute_for(d.quant.id):.0%} of peak compute assumed)"
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
            "decode_bandwidth": perf.eff.decode_bandwidth_for(d.quant.id),
            "prefill_compute": perf.eff.prefill_compute_for(d.quant.id),
            "step_overhead_s": perf.eff.step_overhead_s,
            "source": perf.eff.source,
        },
    )


Arrival = Literal["burst", "steady"]
ARRIVALS: tuple[Arrival, ...] = ("burst", "steady")


def steady_state_point(
    perf: PerfModel,
    concurrency: int,
    prompt_tokens: int,
    output_tokens: int,
    arrival: Arrival = "burst",
    load: ClosedLoop | None = None,
) -> CurvePoint:
    """`concurrency` closed-loop clients sending equal requests (docs/sizing.md, "Concurrency:
    queueing before the first token"), arriving in one of two patterns:

    - "burst": the c clients start together (what `wave bench -c` measures without --ramp).
    - "steady": starts spread over a request's duration (`wave bench --ramp ~one request
      --point-warmup c`, and what a service sees from many independent users).

    llama.cpp runs are simulated (`_schedule`): `ROUNDS` requests per client, or exactly the run
    `load` describes (what `wave bench` recorded). Other engines use the closed form below.
    """
    if arrival not in ARRIVALS:
        raise InputError(f"arrival must be one of {', '.join(ARRIVALS)}, not {arrival!r}", where="arrival")
    c, prompt, output = concurrency, prompt_tokens, output_tokens
    if perf.d.engine == "llamacpp":
        sim = simulate(perf, load or _default_run(perf, c, prompt, output, arrival))
        # a replayed burst reports what wave bench measured (its tokens over its window, edges
        # included); otherwise the rate the closed loop sustains (Little's law)
        rate = sim.window_tokens_per_s if load and arrival == "burst" else sim.output_tokens_per_s
        return CurvePoint(
            concurrency=c,
            ttft_ms=round(sim.ttft_s * 1000, 3),
            itl_ms=round(sim.itl_s * 1000, 3),
            output_tokens_per_s=round(rate, 3),
        )
    return _closed_form(perf, c, prompt, output, arrival)


def _default_run(perf: PerfModel, c: int, prompt: int, output: int, arrival: Arrival) -> ClosedLoop:
    if arrival == "burst":
        return ClosedLoop(c, prompt, output, requests=ROUNDS * c)
    # steady: starts spread over one request's duration, the first round not measured
    one = _closed_form(perf, c, prompt, output, arrival)
    ramp = (one.ttft_ms + (output - 1) * one.itl_ms) / 1000
    return ClosedLoop(c, prompt, output, requests=(ROUNDS + 1) * c, ramp_s=ramp, skip=c)


def _closed_form(perf: PerfModel, c: int, prompt: int, output: int, arrival: Arrival) -> CurvePoint:
    """Burst: each round the engine gets all c prompts at once and prefills them first come, first
    served, batched with the decode steps of the requests already running: the median request waits
    for the step in flight, then for the prompts of half of the others, then for its own; the other
    half interrupt its decode. Steady: a new prompt arrives while the others decode, waits for the
    step in flight and is prefilled in the next one; every other client's prompt interrupts its
    decode once per round. Both add `first_token_s`."""
    prefill = perf.prefill_seconds(prompt)
    # one more prompt in a batched prefill costs its compute, not another pass over the weights
    extra_prompt = max(0.0, perf.prefill_seconds(prompt, batch=2) - prefill)
    step = perf.decode_step_seconds(c, prompt + output // 2)
    first = perf.first_token_seconds()
    if arrival == "burst":
        ahead = (c - 1) / 2
        ttft = prefill + ahead * extra_prompt + (step if c > 1 else 0.0) + first
        itl = step + (c - 1 - ahead) * extra_prompt / max(1, output - 1)
    else:
        itl = step + (c - 1) * extra_prompt / max(1, output - 1)
        ttft = prefill + (itl if c > 1 else 0.0) + first
    e2e = ttft + (output - 1) * itl
    return CurvePoint(
        concurrency=c,
        ttft_ms=round(ttft * 1000, 3),
        itl_ms=round(itl * 1000, 3),
        output_tokens_per_s=round(c * output / e2e, 3),
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


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _device_sentence(p: PoolUse, d: Deployment) -> str:
    if p.reserved_bytes and d.engine == "trtllm":
        return (
            f"{p.device.id}: weights {_gb(p.weights_bytes)} + overhead {_gb(p.overhead_bytes)}; "
            f"TensorRT-LLM gives 90% of the rest to KV ({_gb(p.kv_bytes)}) = {_gb(p.reserved_bytes)} "
            f"of {_gb(p.pool_bytes)}"
        )
    if p.reserved_bytes:
        return (
            f"{p.device.id}: {d.gpu_memory_utilization:g} x {_gb(p.device.memory_bytes)} = "
            f"{_gb(p.reserved_bytes)} reserved by vLLM: weights {_gb(p.weights_bytes)} + overhead "
            f"{_gb(p.overhead_bytes)} leave KV {_gb(p.kv_bytes)}"
        )
    layers = f" ({p.layers:g} layers)" if d.engine == "llamacpp" else ""
    shared = (
        f" (CPU and GPU share this memory: {_gb(p.cpu_side_bytes)} of it is llama.cpp's CPU-side "
        "input embedding and buffers)"
        if p.role == "unified"
        else ""
    )
    return (
        f"{p.device.id}{layers}: weights {_gb(p.weights_bytes)} + KV {_gb(p.kv_bytes)} + overhead "
        f"{_gb(p.overhead_bytes)} = {_gb(p.used_bytes)} of {_gb(p.pool_bytes)} usable{shared}"
    )


def _stand_in(p: PoolUse, d: Deployment) -> bool:
    """The host-RAM share of a discrete GPU when no CPU device was given: shown, never judged."""
    return p.role == "host" and d.host is None and p.layers == 0


def _verdict(d: Deployment, plan: MemoryPlan, req: SizingRequest, max_conc: int) -> tuple[Verdict, list[str]]:
    pools = plan.pools
    reasons = [_device_sentence(p, d) for p in pools if p.used_bytes > 0 and not _stand_in(p, d)]
    host_only = [p for p in pools if _stand_in(p, d)]
    if d.engine == "llamacpp" and host_only and host_only[0].weights_bytes:
        reasons.append(
            f"host RAM: {_gb(host_only[0].used_bytes)} (llama.cpp keeps the input embedding on the CPU)"
        )
    reasons += plan.problems
    tight_fraction = rules().memory.tight_fraction
    if d.context > d.model.max_context:
        msg = f"context {d.context} exceeds the model's trained maximum of {d.model.max_context}"
        if d.engine in ("vllm", "trtllm"):
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
    if req.concurrency > max_conc:
        if verdict == "fits":
            verdict = "tight"
        reasons.append(
            f"only {max_conc} sequence(s) of {d.context} tokens fit in the KV cache; "
            f"{req.concurrency - max_conc} of {req.concurrency} concurrent requests would wait"
        )
    elif d.engine in ("vllm", "trtllm"):
        reasons.append(
            f"KV cache holds {plan.kv_capacity_tokens:,} tokens = {max_conc} sequences of {d.context}"
        )
    for p in pools:
        if (
            p.pool_bytes
            and not p.reserved_bytes
            and p.used_bytes > tight_fraction * p.pool_bytes
            and not _stand_in(p, d)
            and verdict != "offload"  # an automatic -ngl split fills the GPU on purpose
        ):
            if verdict == "fits":
                verdict = "tight"
            reasons.append(
                f"{p.device.id} is {p.used_bytes / p.pool_bytes:.0%} full "
                f"(above {tight_fraction:.0%}): little room for longer prompts or other processes"
            )
    return verdict, reasons


def _memory(d: Deployment, plan: MemoryPlan, concurrency: int) -> Memory:
    devices = [
        DeviceMemory(
            device="host-ram" if _stand_in(p, d) else p.device.id,
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
