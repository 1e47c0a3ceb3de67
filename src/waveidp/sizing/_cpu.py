"""llama.cpp on a CPU: which ggml-cpu kernel runs each weight format on each instruction-set tier,
what share of the core's peak it reaches, and how that scales with threads and prompt length.

What ggml-cpu does (llama.cpp b11434, ggml/src/ggml-cpu):

- token generation (one row of activations, `n = 1`) runs each weight row through the format's
  `vec_dot` against activations quantized to the format's partner (`type_traits_cpu[].vec_dot_type`:
  q8_0 for q4_0/q5_0/q8_0/iq4_nl, q8_1 for q4_1/q5_1, q8_K for the k-quants; f16 and bf16 dot their
  own type), except for repacked weights, which use the repack `gemv`;
- prompt processing (`n >= 2`) goes to, in order: an extra buffer type that claimed the weights at
  load (AMX on Sapphire Rapids and later for q4_0/q4_1/q8_0/q4_K/q5_K/q6_K/iq4_xs; the repacked
  interleaved layouts `repack.cpp` picks: q4_0, q4_K, iq4_nl and mxfp4 to 8x8 blocks with AVX2,
  q2_K with AVX-512, q4_0/q4_K/q5_K/q6_K/q8_0 with NEON dotprod/i8mm); then llamafile's tinyBLAS
  (`llamafile/sgemm.cpp`: f32/f16/bf16 tiles on AVX/AVX-512/NEON, bf16 through VDPBF16PS with
  AVX512-BF16, and int8 tiles for q8_0/q4_0/q5_0/iq4_nl with VPDPBUSD under AVX512-VNNI or
  maddubs under AVX2); else the same `vec_dot` per (row, column) pair as token generation.

So a weight format's speed depends on the tier, not one generic efficiency. `data/cpu_kernels.yaml`
holds, per tier and format, the kernels and their measured rates in multiples of the core's fp32
FMA peak (`Hardware.dense_flops["fp32"]`): int8 dot products (VPDPBUSD, maddubs, SDOT) and bf16
dots do more than that, so a share may exceed 1. The fp32 rate is the one figure every CPU
description has, and on each tier the int8 and bf16 units scale with the same SIMD width. A share
is a property of a core, not only of its instruction set: the same AVX-512 kernels reach about half
the share of a Sapphire/Emerald Rapids core's peak (two 512-bit FMA units, 64 FLOP per cycle) that
they reach on Zen 4 (two 256-bit units, 32), because unpacking, conversions and loads, not the FMA
units, bind them; so those Xeons (flag avx512_fp16) have their own tier, measured on the H100
host's. AMX tiles are not measured (llama.cpp's AMX path died of SIGILL on that VM): the `amx` tier
borrows those AVX-512 cells. A tier or format not measured borrows the nearest measured cell and
says so.

Threads multiply the compute (up to the physical cores), less `threads_compute` (all-core clocks
are below one core's boost, and threads wait for each other at every op); each thread streams at
most its core's bandwidth (measured by the probe, else a rule) and all together at most the
memory's peak, the two limits combined harmonically, of which llama.cpp reaches
`decode_bandwidth`. Prompt processing reaches its rate
only for long enough prompts: the tiles fill up (`tokens / (tokens + half_tokens)`).

On CPUs the `Efficiency` of llama.cpp scales this table: `prefill_compute` and `decode_compute` are
multipliers on the cells' shares (1 = as measured on the reference CPU), which is what a node's
calibration fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from waveidp.catalog._models import Dtype, Hardware, ModelSpec
from waveidp.catalog._quantize_mix import weight_types
from waveidp.errors import ConfigError
from waveidp.sizing._data import DATA, read_typed
from waveidp.sizing._efficiency import Efficiency


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    """An instruction-set level of ggml-cpu: a CPU with all `flags` runs this tier's kernels."""

    id: str
    flags: tuple[str, ...]
    like: str | None = Field(default=None, description="an unmeasured tier borrows this tier's cells")
    note: str = ""


class Kernel(_Strict):
    """One (tier, weight format) cell: the kernels ggml-cpu runs and the shares of peak they reach."""

    prefill: str = Field(description="the kernel of prompt processing (n >= 2)")
    decode: str = Field(description="the kernel of token generation (n = 1)")
    dtype: Dtype = Field(description="the arithmetic the kernels do (int8 dots, bf16 dots or fp32 FMAs)")
    prefill_share: float = Field(
        gt=0, le=16, description="weight FLOP/s per core in long prompts, in multiples of the fp32 FMA peak"
    )
    decode_share: float = Field(
        gt=0, le=16, description="the same per thread in token generation (dequantize + dot, one row)"
    )
    half_tokens: float = Field(ge=0, description="prompt length at which prefill reaches half its rate")
    source: str = ""


class FewRows(_Strict):
    """A tinyBLAS kernel with 2-4 activation rows (a decode step of a few sequences, a few prompts'
    logits): one tile spans every row, so it walks 4 weight rows side by side once, each a stream of
    a few hundred bytes too short for the hardware prefetcher to run ahead of: a memory latency per
    weight row, beside the tile's dot products (few_rows.py; both from a regression over row widths
    576-2048)."""

    shares: tuple[float, ...] = Field(description="the dot products' share of the fp32 peak, 2, 3, ... rows")
    row_latency_s: float = Field(ge=0, description="seconds per weight row, whatever the row width")


class CpuTable(_Strict):
    tiers: tuple[Tier, ...]
    formats: dict[str, str] = Field(
        description="weight format (quant id) -> the measured format it runs like"
    )
    kernels: dict[str, dict[str, Kernel]]
    attention_share: float = Field(gt=0, le=1, description="share of the fp32 peak in attention")
    threads_compute: float = Field(
        gt=0,
        le=1,
        description="share of n x the one-thread rate n >= 2 threads reach (Efficiency.threads_compute)",
    )
    threads_falloff: float = Field(
        ge=0, le=1, description="and its decline with more threads: x n^-falloff (sync, all-core clocks)"
    )
    layer_token_flops: float = Field(
        default=0.0,
        ge=0,
        description="a layer's work per token outside its matmuls and attention (norms, rope, activations, "
        "the activations' int8 quantization), as the FLOPs the core's fp32 peak would do in that time",
    )
    layer_step_flops: float = Field(
        default=0.0,
        ge=0,
        description="the same per layer per graph evaluation (a decode step or a prompt's ubatch): "
        "dispatching and finishing the layer's 20-30 ops",
    )
    few_rows: dict[str, dict[str, FewRows]] = Field(
        default_factory=dict,
        description="tier -> format -> the prompt kernel with 2-4 activation rows, where measured",
    )
    source: str


@cache
def table() -> CpuTable:
    return read_typed(DATA / "cpu_kernels.yaml", CpuTable)


def tier_of(flags: tuple[str, ...] | frozenset[str]) -> Tier:
    """The most capable tier whose flags the CPU has."""
    have = set(flags)
    return next(t for t in table().tiers if set(t.flags) <= have)


def kernel_for(flags: tuple[str, ...] | frozenset[str], quant: str) -> tuple[Tier, Kernel, str]:
    """(tier, cell, note) of `quant` on a CPU with `flags`: the format's own cell on the CPU's tier,
    else the format it runs like (`formats`) there, else the same on the tier it borrows from
    (`like`); the note says what was borrowed."""
    tier, cell, note, _ = _resolve(flags, quant)
    return tier, cell, note


def few_rows_for(flags: tuple[str, ...] | frozenset[str], quant: str) -> FewRows | None:
    """The 2-4-row measurement of the cell `kernel_for` picks, if there is one."""
    return _resolve(flags, quant)[3]


def _resolve(flags: tuple[str, ...] | frozenset[str], quant: str) -> tuple[Tier, Kernel, str, FewRows | None]:
    t = table()
    tier = tier_of(flags)
    like = t.formats.get(quant, quant)
    measured: Tier | None = tier
    while measured is not None:
        cells = t.kernels.get(measured.id, {})
        for fmt in dict.fromkeys((quant, like)):
            if fmt in cells:
                notes = [f"{quant} runs like {fmt}"] if fmt != quant else []
                if measured.id != tier.id:
                    notes.append(f"tier {tier.id} not measured: rates of {measured.id}")
                return tier, cells[fmt], "; ".join(notes), t.few_rows.get(measured.id, {}).get(fmt)
        measured = next((x for x in t.tiers if x.id == measured.like), None)
    raise ConfigError(
        f"no CPU kernel rate for {quant} on tier {tier.id}", where=str(DATA / "cpu_kernels.yaml")
    )


UBATCH = 512  # llama.cpp's physical batch (-ub): a longer prompt is several graph evaluations


@dataclass(frozen=True)
class CpuRates:
    """What llama.cpp achieves on one CPU for one weight file and thread count (all threads)."""

    tier: str
    kernel: Kernel
    note: str
    matmul_flops: float  # prompt processing, long prompts (the file's layer weights as a whole)
    gemv_flops: float  # token generation (layers and output)
    attention_flops: float
    stream_bytes: float  # weight bytes per second in token generation
    # (share of the layer weights, long-prompt rate, half_tokens) per kernel the file's layers run on
    prefill_mix: tuple[tuple[float, float, float], ...] = ()
    # the same for the output matrix (a GGUF often keeps it in another format: q8_0, q6_K), and its
    # one-row rate: a prompt's logits are one row per sequence, which runs the output's gemv
    output_mix: tuple[tuple[float, float, float], ...] = ()
    output_gemv_flops: float = 0.0
    # the output's kernel with 2, 3, ... rows where measured (FewRows): its rates, and the seconds per
    # weight row it waits on memory
    output_few_flops: tuple[float, ...] = ()
    output_row_latency_s: float = 0.0
    layers_gemv_flops: float = 0.0  # the layers' weights alone in token generation
    # seconds per layer outside the matmuls and attention: (per graph evaluation, per token) in
    # prompt processing and in token generation (each scaled like its matmuls)
    layer_prefill_s: tuple[float, float] = (0.0, 0.0)
    layer_decode_s: tuple[float, float] = (0.0, 0.0)

    def layer_seconds(self, layers: float, tokens: int, *, decode: bool) -> float:
        """The non-matmul work of `layers` layers for `tokens` tokens: one graph evaluation per
        llama.cpp ubatch of up to 512 tokens (a decode step of `tokens` sequences is one)."""
        step, token = self.layer_decode_s if decode else self.layer_prefill_s
        evaluations = 1 if decode else max(1, -(-tokens // UBATCH))
        return layers * (evaluations * step + max(1, tokens) * token)

    def prefill_matmul_flops(self, tokens: int) -> float:
        """The layers' matmul rate for a batch of `tokens` rows (a prompt, or a decode step of
        `tokens` sequences): their gemv for one row, else their prompt kernels as the tiles fill up
        with the batch (no slower than the gemv); a file whose layers run on several kernels takes
        the sum of their times."""
        gemv = self.layers_gemv_flops or self.gemv_flops
        if tokens <= 1:
            return gemv
        mix = self.prefill_mix or ((1.0, self.matmul_flops, self.kernel.half_tokens),)
        return _mix_rate(mix, tokens, gemv)

    def logits_flops(self, rows: int) -> float:
        """The same for the output matrix and `rows` rows of logits (the last position of each
        prompt, or each sequence of a decode step)."""
        if not self.output_mix:
            return self.prefill_matmul_flops(rows)
        gemv = self.output_gemv_flops or self.gemv_flops
        return gemv if rows <= 1 else _mix_rate(self.output_mix, rows, gemv)

    def logits_seconds(self, rows: int, flops_per_row: float, weight_rows: float) -> float:
        """The output matrix (`weight_rows` rows, `flops_per_row` per row of logits) for `rows` rows
        of logits: with 2-4 rows, where measured, the tiles' memory latency per weight row plus
        their dot products at their measured rate (slower than the gemv's per output on narrow
        rows: 2 rows of Gemma 3 270M's q8_0 output take 2.9x one); else at `logits_flops`."""
        rows = max(1, rows)
        few = self.output_few_flops
        if 2 <= rows < 2 + len(few):
            return weight_rows * self.output_row_latency_s + rows * flops_per_row / few[rows - 2]
        return rows * flops_per_row / self.logits_flops(rows)


def _mix_rate(mix: tuple[tuple[float, float, float], ...], tokens: int, floor: float) -> float:
    """Matmul rate over kernels (share, long-prompt rate, half_tokens) for `tokens` rows: the sum of
    their times, each no slower than `floor` (the gemv)."""
    n = max(1, tokens)
    return 1.0 / sum(w / max(floor, rate * n / (n + half)) for w, rate, half in mix)


# GGUF tensor types -> the kernel table's format that runs them
_TENSOR_FORMAT = {
    "F32": "f16", "F16": "f16", "BF16": "bf16", "Q4_0": "q4_0", "Q4_1": "q4_1", "Q5_0": "q5_0",
    "Q5_1": "q5_1", "Q8_0": "q8_0", "Q2_K": "q2_k", "Q3_K": "q3_k_m", "Q4_K": "q4_k_m", "Q5_K": "q5_k_m",
    "Q6_K": "q6_k", "IQ4_XS": "iq4_xs", "IQ4_NL": "q4_0",
}  # fmt: skip


def weight_mix(
    quant: str, model: ModelSpec | None
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(layers, layers + output, output): the share of matmul parameters each table format runs,
    from the tensor types of the model's file, or of the file llama-quantize would make of it. A k-quant
    file's k-quant tensors are its format (its cell was measured on such a mix: q4_k_m keeps some q6_K);
    other types run their own kernels (a q4_k_m file whose rows are not multiples of 256 holds q5_0 and
    q8_0 tensors). Types unknown: all `quant`."""
    types = weight_types(model, quant) if model is not None else None
    if not types or not types.get("layers"):
        return {quant: 1.0}, {quant: 1.0}, {quant: 1.0}
    k_file = "_k" in quant

    def fmt(kind: str) -> str:
        own = _TENSOR_FORMAT.get(kind)
        if own is None or own == quant or (k_file and kind.endswith("_K")):
            return quant
        return own

    def shares(parts: list[dict[str, int]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in parts:
            for kind, n in part.items():
                out[fmt(kind)] = out.get(fmt(kind), 0.0) + n
        total = sum(out.values())
        return {f: n / total for f, n in out.items()}

    output = shares([types["output"]]) if types.get("output") else {quant: 1.0}
    return shares([types["layers"]]), shares([types["layers"], types.get("output", {})]), output


def cpu_rates(
    hw: Hardware,
    quant: str,
    threads: int | None,
    eff: Efficiency,
    *,
    core_bandwidth: float,
    model: ModelSpec | None = None,
) -> CpuRates:
    """llama.cpp's rates on `hw` with `threads` threads (None = one per core) for a `quant` file
    (`model`'s tensor types, when it was read from one, pick the kernels of each part)."""
    t = table()
    tier, kernel, note = kernel_for(hw.cpu_flags, quant)
    cores = hw.cores or 1
    used = min(threads or cores, cores)
    fp32 = peak_per_core(hw, "fp32")
    per_thread_bw = hw.core_bandwidth_bytes_per_s or core_bandwidth
    decode_scale = eff.decode_compute if eff.decode_compute is not None else eff.prefill_compute
    # n threads compute n x one thread's rate, less what all-core clocks and per-op syncs cost
    if used > 1:
        share = eff.threads_compute if eff.threads_compute is not None else t.threads_compute
        parallel = used * share * used**-t.threads_falloff
    else:
        parallel = 1.0
    # one thread streams its core's figure (the probe's one-reader rate, which has the memory in its
    # path already); n threads approach the memory's peak from it harmonically, so that one thread
    # gets exactly its figure (a plain harmonic sum of the two counts the memory twice: it put one
    # thread of sizing_cpu.py's 2-core VM at 17 GB/s where llama.cpp streams 21-26; on the H100
    # host's 16-core Xeon, whose memory is 11x one core, the two forms differ by under 10%); of that
    # llama.cpp reaches `decode_bandwidth`
    memory = hw.memory_bandwidth_bytes_per_s
    if memory <= per_thread_bw:
        streamed = memory
    else:
        alone = per_thread_bw * memory / (memory - per_thread_bw)
        streamed = 1 / (1 / (alone * used) + 1 / memory)
    stream = eff.decode_bandwidth * streamed
    layers, whole, output = weight_mix(quant, model)
    cells = {f: kernel_for(hw.cpu_flags, f)[1] for f in {*layers, *whole, *output}}
    # the output's own measured few rows, when the whole output runs one such kernel
    few = few_rows_for(hw.cpu_flags, next(iter(output))) if len(output) == 1 else None
    # the matmuls' rates per unit of share; a layer's other ops run on the same cores at the same scale
    prefill_scale = fp32 * eff.prefill_compute * parallel
    decode_core = fp32 * decode_scale * parallel

    def gemv(mix: dict[str, float]) -> float:
        return decode_core / sum(w / cells[f].decode_share for f, w in mix.items())

    def prompt(mix: dict[str, float]) -> tuple[tuple[float, float, float], ...]:
        return tuple(
            (w, prefill_scale * cells[f].prefill_share, cells[f].half_tokens) for f, w in sorted(mix.items())
        )

    prefill_mix = prompt(layers)
    if len(cells) > 1:
        parts = ", ".join(f"{f} {w:.0%}" for f, w in sorted(whole.items(), key=lambda x: -x[1]))
        note = "; ".join(x for x in (note, f"the file's matmul weights: {parts}") if x)
    return CpuRates(
        tier=tier.id,
        kernel=kernel,
        note=note,
        matmul_flops=1.0 / sum(w / r for w, r, _ in prefill_mix),
        gemv_flops=gemv(whole),
        attention_flops=fp32 * t.attention_share * eff.prefill_compute * parallel,
        stream_bytes=stream,
        prefill_mix=prefill_mix,
        output_mix=prompt(output),
        output_gemv_flops=gemv(output),
        output_few_flops=tuple(prefill_scale * x for x in few.shares) if few else (),
        # tinyBLAS splits the tiles evenly over the threads (sgemm.cpp: duty = tiles / nth): waits overlap
        output_row_latency_s=few.row_latency_s / used if few else 0.0,
        layers_gemv_flops=gemv(layers),
        layer_prefill_s=(t.layer_step_flops / prefill_scale, t.layer_token_flops / prefill_scale),
        layer_decode_s=(t.layer_step_flops / decode_core, t.layer_token_flops / decode_core),
    )


def peak_per_core(hw: Hardware, dtype: Dtype) -> float:
    """One core's peak for `dtype` (the catalog's all-core figure over the cores; a CPU listing no
    fp32 figure falls back to its widest)."""
    flops = hw.dense_flops
    value = flops.get(dtype) or flops.get("fp32") or max(flops.values(), default=0.0)
    return value / (hw.cores or 1)
