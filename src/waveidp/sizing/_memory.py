"""Memory math: weights, KV cache and runtime overhead, placed on devices by each engine's rules.

Everything here is arithmetic on typed models; the numbers are integers of bytes so tests can
compare them exactly with a hand computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from waveidp.catalog._models import Hardware, ModelSpec, Quant
from waveidp.catalog._quantize_mix import types_bytes, weight_types
from waveidp.errors import InputError
from waveidp.sizing._data import EngineRule, rules
from waveidp.sizing._deployment import Deployment
from waveidp.sizing._units import gb

GIB = 1024**3


@dataclass(frozen=True)
class Placement:
    """One device's share of a deployment."""

    device: Hardware
    role: str  # "accelerator" or "host"
    pool_bytes: int  # memory the engine may use on it
    layers: float  # transformer layers held here
    weights_bytes: int
    kv_bytes: int
    overhead_bytes: int
    read_bytes: int  # weight bytes read per decoded token (input embedding rows excluded)
    param_share: float  # share of the per-token FLOPs computed here
    kv_share: float  # share of each sequence's KV held here
    reserved_bytes: int = 0  # vLLM: the whole gpu_memory_utilization budget is taken

    @property
    def used_bytes(self) -> int:
        return max(self.reserved_bytes, self.weights_bytes + self.kv_bytes + self.overhead_bytes)


@dataclass(frozen=True)
class PoolUse:
    """One physical memory and what is placed in it. On unified memory (a Jetson) the CPU-side buffers
    llama.cpp keeps off the GPU live in the same pool as the GPU's share, so both parts count here."""

    device: Hardware
    role: str  # "accelerator", "host", or "unified" (accelerator and CPU-side share of one memory)
    pool_bytes: int
    parts: tuple[Placement, ...]

    @property
    def layers(self) -> float:
        return sum(p.layers for p in self.parts)

    @property
    def weights_bytes(self) -> int:
        return sum(p.weights_bytes for p in self.parts)

    @property
    def kv_bytes(self) -> int:
        return sum(p.kv_bytes for p in self.parts)

    @property
    def overhead_bytes(self) -> int:
        return sum(p.overhead_bytes for p in self.parts)

    @property
    def reserved_bytes(self) -> int:
        return sum(p.reserved_bytes for p in self.parts)

    @property
    def used_bytes(self) -> int:
        return sum(p.used_bytes for p in self.parts)

    @property
    def cpu_side_bytes(self) -> int:
        """Bytes of the CPU-side share when this pool is shared (0 otherwise)."""
        return sum(p.used_bytes for p in self.parts if p.role == "host") if self.role == "unified" else 0


def _shares_memory(p: Placement) -> bool:
    """The CPU-side share of a unified-memory accelerator (the host stand-in that is not a CPU device)."""
    return p.role == "host" and p.device.kind != "cpu" and (p.device.unified_memory or p.device.kind == "soc")


@dataclass(frozen=True)
class MemoryPlan:
    weights_bytes: int
    kv_bytes_per_token: int  # averaged over `context` (sliding-window layers capped)
    kv_bytes: int  # KV allocated
    overhead_bytes: int
    kv_capacity_tokens: int
    placements: list[Placement]
    kv_dtype: str
    n_ctx: int | None = None  # llama.cpp -c
    n_gpu_layers: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def gpu_bytes(self) -> int:
        return sum(p.used_bytes for p in self.placements if p.role == "accelerator")

    @property
    def cpu_bytes(self) -> int:
        return sum(p.used_bytes for p in self.placements if p.role == "host")

    @property
    def total_bytes(self) -> int:
        return sum(p.used_bytes for p in self.placements)

    @property
    def pools(self) -> list[PoolUse]:
        """Placements grouped by the physical memory they use: one pool per device, except that the
        CPU-side share on unified memory joins its accelerator's pool."""
        out: list[PoolUse] = []
        for p in self.placements:
            home = next(
                (i for i, u in enumerate(out) if _shares_memory(p) and u.device.id == p.device.id), None
            )
            if home is None:
                out.append(PoolUse(p.device, p.role, p.pool_bytes, (p,)))
            else:
                u = out[home]
                out[home] = PoolUse(u.device, "unified", u.pool_bytes, (*u.parts, p))
        return out


# ---- model-level quantities -------------------------------------------------------------------


def kv_element_bytes(d: Deployment) -> tuple[str, float]:
    table = rules().kv_dtype_bytes.values
    name = d.kv_dtype or rules().engines[d.engine].default_kv_dtype
    if name not in table:
        raise InputError(
            f"unknown KV cache dtype '{name}'", where="--kv-dtype", fix=f"use one of {', '.join(table)}"
        )
    return name, table[name]


def kv_bytes_per_token_full(model: ModelSpec, elem: float) -> int:
    """2 (K and V) x layers x kv_heads x head_dim x bytes per element."""
    return math.ceil(2 * model.layers * model.kv_heads * model.head_dim * elem)


def kv_bytes(model: ModelSpec, elem: float, context: int, seqs: int = 1) -> int:
    """KV bytes of `seqs` sequences of `context` tokens; sliding-window layers keep only the window."""
    per_layer_token = 2 * model.kv_heads * model.head_dim * elem
    swa = model.sliding_window_layers if model.sliding_window else 0
    window = min(context, model.sliding_window or context)
    full = (model.layers - swa) * per_layer_token * context + swa * per_layer_token * window
    return math.ceil(full * seqs)


def weights_bytes(model: ModelSpec, quant: Quant) -> int:
    """A model read from a `quant` file weighs its file; a GGUF quantization of a catalog model weighs
    the tensors llama-quantize would make from its shape (catalog._quantize_mix); anything else is
    parameters x the format's bits per weight."""
    if model.file_bytes and model.file_quant == quant.id:
        return model.file_bytes
    types = weight_types(model, quant.id)
    total = sum(types_bytes(part) or 0 for part in types.values()) if types else 0
    return total or math.ceil(model.params * quant.bits_per_weight / 8)


def _part_bytes(model: ModelSpec, quant: Quant, part: str) -> int:
    types = weight_types(model, quant.id)
    found = types_bytes(types[part]) if types and types.get(part) else None
    return found or math.ceil(model.vocab_size * model.hidden_size * quant.bits_per_weight / 8)


def embedding_bytes(model: ModelSpec, quant: Quant) -> int:
    """The input token embedding (the output matrix itself when the two are tied)."""
    return _part_bytes(model, quant, "output" if model.tied_embeddings else "embedding")


def output_bytes(model: ModelSpec, quant: Quant) -> int:
    """The output matrix (llama-quantize keeps it at Q6_K or Q8_0 in a quantized GGUF)."""
    return _part_bytes(model, quant, "output")


def activation_bytes(model: ModelSpec, tokens: int, seqs: int) -> int:
    """Peak activation memory of one forward pass over `tokens` tokens: the MLP's gate/up outputs and a
    few hidden-size buffers in 16-bit, plus fp32 logits for the sampled positions (an approximation)."""
    return tokens * (2 * model.intermediate_size + 4 * model.hidden_size) * 2 + seqs * model.vocab_size * 4


def pool_bytes(hw: Hardware, rule: EngineRule) -> int:
    """Memory an engine may use on `hw`: RAM less the OS, a unified pool less the OS, VRAM less a margin."""
    mem = rules().memory
    if hw.kind == "cpu":
        return hw.memory_bytes - mem.os_reserve_bytes
    if hw.unified_memory or hw.kind == "soc":
        return hw.memory_bytes - mem.unified_os_reserve_bytes
    return hw.memory_bytes - rule.gpu_free_margin_bytes


def _context_overhead(hw: Hardware, rule: EngineRule) -> int:
    return rule.cuda_context_bytes if hw.kind in ("gpu", "soc") else 0


# ---- engine plans ------------------------------------------------------------------------------


def plan_memory(d: Deployment) -> MemoryPlan:
    if d.engine == "llamacpp":
        return plan_llamacpp(d, d.n_gpu_layers)
    return _plan_paged(d)


def _plan_paged(d: Deployment) -> MemoryPlan:
    """vLLM / TensorRT-LLM / transformers: weights split evenly over the tensor-parallel GPUs (or
    pipeline stages for transformers), KV in what the memory budget leaves."""
    rule = rules().engines[d.engine]
    kv_name, elem = kv_element_bytes(d)
    devices = d.accelerators or [d.devices[0]]
    n = len(devices)
    W = weights_bytes(d.model, d.quant)
    E = embedding_bytes(d.model, d.quant)
    read_total = W - (0 if d.model.tied_embeddings else E)
    kv_seq = kv_bytes(d.model, elem, d.context)
    per_token_avg = math.ceil(kv_seq / d.context)
    heads_here = (
        max(1, math.ceil(d.model.kv_heads / n)) if d.engine != "transformers" else d.model.kv_heads / n
    )
    kv_share = heads_here / d.model.kv_heads
    per_token_dev = per_token_avg * kv_share
    # vLLM/TRT-LLM profile one full scheduler batch; transformers runs one prompt at a time
    tokens = d.max_num_batched_tokens
    if d.engine == "transformers":
        tokens = min(tokens, d.context)
    act = activation_bytes(
        d.model, tokens, min(rule.max_num_seqs, d.parallel if d.engine == "transformers" else 256)
    )
    placements: list[Placement] = []
    problems: list[str] = []
    capacity: int | None = None
    kv_total = 0
    for hw in devices:
        pool = pool_bytes(hw, rule)
        w = math.ceil(W / n)
        overhead = _context_overhead(hw, rule) + math.ceil(act / n)
        if d.engine == "vllm":
            budget = min(math.floor(d.gpu_memory_utilization * hw.memory_bytes), pool)
            free = budget - w - overhead
            blocks = max(0, math.floor(free / (d.block_size * per_token_dev)))
            cap = blocks * d.block_size
            kv = math.ceil(cap * per_token_dev)
            reserved = budget
        elif d.engine == "trtllm":
            free = pool - w - overhead
            frac = rule.free_gpu_memory_fraction or 0.9
            cap = max(0, math.floor(free * frac / per_token_dev))
            kv = math.ceil(cap * per_token_dev)
            reserved = w + overhead + kv  # the KV pool is allocated up front, full by design
        else:
            free = pool - w - overhead
            cap = max(0, math.floor(free / per_token_dev))
            kv = math.ceil(d.parallel * d.context * per_token_dev)
            reserved = 0
        capacity = cap if capacity is None else min(capacity, cap)
        kv_total += kv
        role = "accelerator" if hw.kind != "cpu" else "host"
        placements.append(
            Placement(
                hw,
                role,
                pool,
                d.model.layers / (1 if d.engine != "transformers" else n),
                w,
                kv,
                overhead,
                math.ceil(read_total / n),
                1 / n,
                kv_share,
                reserved,
            )
        )
        if free <= 0:
            problems.append(
                f"weights {gb(w)} + overhead {gb(overhead)} exceed the {gb(min(pool, reserved or pool))} "
                f"available on {hw.name}"
            )
    cap_tokens = capacity or 0
    if not problems and cap_tokens < d.context:
        problems.append(
            f"KV cache holds {cap_tokens} tokens, less than one sequence of {d.context} "
            f"({d.engine} refuses to start; lower --context)"
        )
    if d.engine == "transformers" and not problems and d.parallel * d.context > cap_tokens:
        problems.append(
            f"{d.parallel} sequences x {d.context} tokens need more KV than the {cap_tokens} that fit"
        )
    overhead_total = sum(p.overhead_bytes for p in placements)
    return MemoryPlan(
        W, per_token_avg, kv_total, overhead_total, cap_tokens, placements, kv_name, problems=problems
    )


def llamacpp_n_ctx(parallel: int, context: int) -> int:
    pad = rules().engines["llamacpp"].context_padding
    return math.ceil(parallel * context / pad) * pad


def plan_llamacpp(d: Deployment, ngl: int | None) -> MemoryPlan:
    rule = rules().engines["llamacpp"]
    kv_name, elem = kv_element_bytes(d)
    m = d.model
    n_ctx = llamacpp_n_ctx(d.parallel, d.context)
    slot = n_ctx // d.parallel
    kv_all = kv_bytes(m, elem, slot, d.parallel)
    per_token_avg = math.ceil(kv_bytes(m, elem, d.context) / d.context)
    W = weights_bytes(m, d.quant)
    E = embedding_bytes(m, d.quant)
    out = output_bytes(m, d.quant)  # E itself when tied
    layer_w = (W - E - (0 if m.tied_embeddings else out)) / m.layers
    compute = rule.n_ubatch * 4 * (m.vocab_size + m.intermediate_size + 2 * m.hidden_size)
    host_small = rule.n_ubatch * 4 * 2 * m.hidden_size
    accels = d.accelerators
    host = d.host
    unified = bool(accels) and all(a.unified_memory or a.kind == "soc" for a in accels)

    if not accels:
        assert host is not None
        pool = pool_bytes(host, rule)
        p = Placement(
            host, "host", pool, m.layers, W, kv_all, compute, W - (0 if m.tied_embeddings else E), 1.0, 1.0
        )
        problems = [] if p.used_bytes <= pool else [_over(p)]
        return MemoryPlan(W, per_token_avg, kv_all, compute, n_ctx, [p], kv_name, n_ctx, 0, problems)

    if ngl is None:
        chosen = m.layers + 1
        if host is not None:
            for candidate in range(m.layers + 1, -1, -1):
                chosen = candidate
                trial = _llamacpp_split(
                    d, candidate, W, E, out, layer_w, kv_all, compute, host_small, unified
                )
                if all(pl.used_bytes <= pl.pool_bytes for pl in trial if pl.role == "accelerator"):
                    break
        ngl = chosen
    ngl = min(ngl, m.layers + 1)
    placements = _llamacpp_split(d, ngl, W, E, out, layer_w, kv_all, compute, host_small, unified)
    overhead = sum(p.overhead_bytes for p in placements)
    plan = MemoryPlan(W, per_token_avg, kv_all, overhead, n_ctx, placements, kv_name, n_ctx, ngl)
    problems = [_over(u) for u in plan.pools if u.used_bytes > u.pool_bytes]
    if host is None and not unified and ngl <= m.layers:
        problems.append(
            f"-ngl {ngl} leaves {m.layers + 1 - ngl} layers in system RAM, which is not described; "
            "add --device <cpu id> to check it"
        )
    return replace(plan, problems=problems)


def _llamacpp_split(
    d: Deployment,
    ngl: int,
    W: int,
    E: int,
    out: int,
    layer_w: float,
    kv_all: int,
    compute: int,
    host_small: int,
    unified: bool,
) -> list[Placement]:
    m = d.model
    rule = rules().engines["llamacpp"]
    accels = d.accelerators
    acc_layers = min(ngl, m.layers)
    out_on_acc = ngl > m.layers
    kv_layer = kv_all / m.layers
    total_mem = sum(a.memory_bytes for a in accels)
    placements: list[Placement] = []
    assigned = 0.0
    for i, a in enumerate(accels):
        share = acc_layers * a.memory_bytes / total_mem
        if i == len(accels) - 1:
            share = acc_layers - assigned
        assigned += share
        last = i == len(accels) - 1
        w = share * layer_w + (out if out_on_acc and last else 0)
        overhead = _context_overhead(a, rule) + compute
        placements.append(
            Placement(
                a,
                "accelerator",
                pool_bytes(a, rule),
                share,
                math.ceil(w),
                math.ceil(share * kv_layer),
                overhead,
                math.ceil(w),
                (share + (1 if out_on_acc and last else 0)) / (m.layers + 1),
                share / m.layers,
            )
        )
    host_layers = m.layers - acc_layers
    host_w = E + host_layers * layer_w + (0 if out_on_acc else (0 if m.tied_embeddings else out))
    host_read = host_layers * layer_w + (0 if out_on_acc else out)
    host_overhead = compute if (host_layers or not out_on_acc) else host_small
    host_hw = d.host or accels[0]
    # on unified memory the CPU-side share is allocated from the accelerator's own pool
    pool = pool_bytes(d.host, rule) if d.host else (pool_bytes(accels[0], rule) if unified else 0)
    placements.append(
        Placement(
            host_hw,
            "host",
            pool,
            host_layers,
            math.ceil(host_w),
            math.ceil(host_layers * kv_layer),
            host_overhead,
            math.ceil(host_read),
            (host_layers + (0 if out_on_acc else 1)) / (m.layers + 1),
            host_layers / m.layers,
        )
    )
    if d.host is None and not unified:
        # host RAM is not described: keep its share visible but never judge it
        placements[-1] = replace(placements[-1], pool_bytes=placements[-1].used_bytes)
    return placements


def _over(p: Placement | PoolUse) -> str:
    shared = (
        f" (shared by CPU and GPU, after the OS reserve; {gb(p.cpu_side_bytes)} of it CPU-side)"
        if isinstance(p, PoolUse) and p.role == "unified"
        else ""
    )
    return (
        f"{p.device.name}: weights {gb(p.weights_bytes)} + KV {gb(p.kv_bytes)} + overhead "
        f"{gb(p.overhead_bytes)} = {gb(p.used_bytes)} exceeds the {gb(p.pool_bytes)} available{shared}"
    )


def is_stand_in(p: PoolUse, d: Deployment) -> bool:
    """The host-RAM share of a discrete GPU when no CPU device was given: shown, never judged."""
    return p.role == "host" and d.host is None and p.layers == 0
