"""The CPU prior's structure: which kernel tier a CPU's flags select, that every weight format the
catalog knows has a kernel on every tier, and the directions a user relies on (threads help until
the memory wall, long prompts run faster per token than short ones, a node's calibration wins)."""

from __future__ import annotations

import pytest
from specs import LLAMA_31_8B, RYZEN_9900X

from waveidp import catalog
from waveidp.catalog import ModelSpec
from waveidp.sizing import Deployment, Efficiency, PerfModel, efficiency_of
from waveidp.sizing._cpu import cpu_rates, few_rows_for, kernel_for, table, tier_of

H100_HOST_FLAGS = [  # tests/fleet/data/detect-h100-nvml.txt: the H100 machine's Xeon host
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
]


@pytest.mark.parametrize(
    ("flags", "tier"),
    [
        (H100_HOST_FLAGS, "amx"),
        ([f for f in H100_HOST_FLAGS if not f.startswith("amx")], "avx512_fp16"),
        (["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"], "avx512_vnni_bf16"),
        (["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"], "avx512_vnni"),
        (["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"], "avx512"),
        (["avx2", "fma", "f16c", "avx_vnni"], "avx_vnni"),
        (["avx2", "fma", "f16c"], "avx2"),
        (["asimd", "asimddp", "i8mm", "sve"], "arm_i8mm"),
        (["fp", "asimd", "asimddp"], "arm_dotprod"),
        (["sse4_2"], "baseline"),
    ],
)
def test_flags_select_the_most_capable_tier_they_allow(flags: list[str], tier: str) -> None:
    assert tier_of(tuple(flags)).id == tier


def test_an_amx_xeon_runs_its_own_cores_cells_not_zen4s() -> None:
    # the H100 host's Xeon ran llama.cpp's AVX-512 kernels at about half the share of its (doubled)
    # fp32 peak that Zen 4 reaches; AMX itself is not measured (its path died of SIGILL there)
    tier, cell, note = kernel_for(tuple(H100_HOST_FLAGS), "q4_0")
    assert (tier.id, tier.like) == ("amx", "avx512_fp16") and "not measured" in note
    zen4 = table().kernels["avx512_vnni_bf16"]
    own = table().kernels["avx512_fp16"]
    assert cell == own["q4_0"]
    assert all(own[f].prefill_share < 0.8 * zen4[f].prefill_share for f in ("q4_0", "q8_0", "q4_k_m", "f16"))


def test_every_llamacpp_format_has_a_kernel_on_every_tier() -> None:
    formats = [q.id for q in catalog.all_quants().values() if "llamacpp" in q.engines]
    assert {"q4_0", "q4_k_m", "q8_0", "f16"} <= set(formats)
    for tier in table().tiers:
        for fmt in formats:
            _, cell, note = kernel_for(tier.flags, fmt)
            assert cell.prefill and cell.decode and 0 < cell.decode_share <= 1
            measured = fmt in table().kernels.get(tier.id, {})
            assert bool(note) != measured  # whatever is borrowed says so


def _cpu(flags: tuple[str, ...], cores: int = 12):  # type: ignore[no-untyped-def]
    return RYZEN_9900X.model_copy(update={"cpu_flags": flags, "cores": cores})


def test_threads_speed_decode_up_to_the_memory_wall() -> None:
    hw = _cpu(("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"))
    eff = efficiency_of(hw, "llamacpp")
    speeds = []
    for t in (1, 2, 4, 8, 12):
        d = Deployment.build(LLAMA_31_8B, "q4_0", [hw], "llamacpp", threads=t)
        speeds.append(PerfModel(d).decode_tokens_per_s(1, 256))
    assert speeds == sorted(speeds) and speeds[1] > 1.5 * speeds[0]
    weights = Deployment.build(LLAMA_31_8B, "q4_0", [hw], "llamacpp").model.params * 4.5 / 8
    wall = hw.memory_bandwidth_bytes_per_s * eff.decode_bandwidth / weights
    assert speeds[-1] <= wall * 1.05 and speeds[-1] > 0.8 * wall  # 12 threads stream what DRAM gives


def test_long_prompts_run_faster_per_token_than_short_ones() -> None:
    # q6_K's vec_dot prompts on AVX2 measured 23.8 tok/s at pp2, 30.0 at pp16 and 52.2 at pp128 (one
    # thread, the 1B); q4_0's repacked gemm is nearly flat from 16 tokens on (30.6 / 47.2 / 48.0)
    def rates(quant: str) -> list[float]:
        d = Deployment.build(LLAMA_31_8B, quant, [_cpu(("avx2", "fma"))], "llamacpp", threads=4)
        perf = PerfModel(d)
        return [n / perf.prefill_seconds(n) for n in (2, 16, 128, 256)]

    q6_k, q4_0 = rates("q6_k"), rates("q4_0")
    assert q6_k == sorted(q6_k) and q6_k[2] > 1.6 * q6_k[0]
    assert q4_0[:3] == sorted(q4_0[:3]) and q4_0[2] < 1.2 * q4_0[1]  # (attention grows past that)


def test_int8_dot_product_tiers_beat_avx2_on_quantized_prompts_but_not_on_f16() -> None:
    def pp(flags: tuple[str, ...], quant: str) -> float:
        d = Deployment.build(LLAMA_31_8B, quant, [_cpu(flags)], "llamacpp", threads=1)
        return 256 / PerfModel(d).prefill_seconds(256)

    vnni = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16")
    avx2 = ("avx2", "fma")
    assert pp(vnni, "q8_0") > pp(avx2, "q8_0")  # same core: VPDPBUSD tiles vs maddubs, measured 1.09x
    assert pp(vnni, "bf16") > 1.2 * pp(avx2, "bf16")  # VDPBF16PS against a conversion to fp32
    # AVX-512 without VNNI/BF16 (this core on llama.cpp's skylakex build) sits between: q4_K's
    # repacked gemm measured 57 / 72 / 78 tok/s (AVX2 / AVX-512 / VNNI, the 1B's pp128, one thread)
    plain512 = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl")
    assert pp(avx2, "q4_k_m") < pp(plain512, "q4_k_m") < pp(vnni, "q4_k_m")


def test_a_devices_own_calibration_wins_and_scales_the_table() -> None:
    plain = _cpu(("avx2", "fma"), cores=4)
    tuned = plain.model_copy(update={"calibration": {"llamacpp": {"prefill_compute": 2.0}}})
    assert efficiency_of(tuned, "llamacpp").prefill_compute == 2.0
    assert "calibrated on its node" in efficiency_of(tuned, "llamacpp").source

    def pp(hw: object) -> float:
        d = Deployment.build(LLAMA_31_8B, "q8_0", [hw], "llamacpp")  # type: ignore[list-item]
        return 512 / PerfModel(d).prefill_seconds(512)

    base = efficiency_of(plain, "llamacpp").prefill_compute
    assert pp(tuned) == pytest.approx(pp(plain) * 2.0 / base, rel=0.05)  # compute-bound: it scales


def test_a_bad_device_calibration_names_the_field() -> None:
    bad = _cpu(("avx2", "fma")).model_copy(update={"calibration": {"llamacpp": {"decode_bandwidth": 3.0}}})
    with pytest.raises(Exception, match="decode_bandwidth"):
        efficiency_of(bad, "llamacpp")


def test_shipped_cpu_factors_are_scales_near_one() -> None:
    eff: Efficiency = efficiency_of(catalog.hardware("cpu-generic"), "llamacpp")
    assert 0.5 <= eff.prefill_compute <= 2 and 0.5 <= (eff.decode_compute or 0) <= 2


def test_a_files_foreign_tensor_types_run_their_own_kernels() -> None:
    """Gemma 3 270M's q4_k_m file: rows of 640 are not multiples of 256, so most layers are q5_0 and
    the tied output q8_0 (read from the file's tensors); it decodes at those kernels' rates."""
    from waveidp.sizing._cpu import weight_mix

    gemma = catalog.model("gemma-3-270m").model_copy(
        update={
            "file_weight_types": {
                "layers": {"Q5_0": 63_406_080, "Q4_K": 23_592_960, "Q6_K": 11_796_480, "Q8_0": 1_474_560},
                "output": {"Q8_0": 167_772_160},
            }
        }
    )
    layers, whole, output = weight_mix("q4_k_m", gemma)
    assert layers["q5_0"] == pytest.approx(0.63, abs=0.01) and layers["q4_k_m"] == pytest.approx(
        0.35, abs=0.01
    )
    assert whole["q8_0"] > 0.6  # the logits matmul over a 262k vocabulary is most of a token's weights

    def gemv_flops(spec: ModelSpec) -> float:
        hw = catalog.hardware("ryzen-9-9900x")
        return cpu_rates(
            hw, "q4_k_m", 1, efficiency_of(hw, "llamacpp"), core_bandwidth=40e9, model=spec
        ).gemv_flops

    # the catalog's Gemma, without a file, holds what llama-quantize would make of it: the same types
    plain = catalog.model("gemma-3-270m")
    assert weight_mix("q4_k_m", plain) == (layers, whole, output)
    assert weight_mix("q4_k_m", None) == ({"q4_k_m": 1.0},) * 3  # types unknown: its nominal format

    def nominal_gemv() -> float:
        hw = catalog.hardware("ryzen-9-9900x")
        return cpu_rates(hw, "q4_k_m", 1, efficiency_of(hw, "llamacpp"), core_bandwidth=40e9).gemv_flops

    # q5_0 and q8_0 gemv are slower than q4_K's repacked one on this tier
    assert gemv_flops(gemma) == gemv_flops(plain) < 0.85 * nominal_gemv()
    # a prompt's logits are one row through the q8_0 output: its gemv, not the layers' prompt kernels
    assert output == {"q8_0": 1.0}
    hw = catalog.hardware("ryzen-9-9900x")
    rates = cpu_rates(hw, "q4_k_m", 1, efficiency_of(hw, "llamacpp"), core_bandwidth=40e9, model=gemma)
    assert rates.logits_flops(1) == rates.output_gemv_flops < rates.prefill_matmul_flops(16)


def test_the_output_matrix_runs_its_own_kernel_in_every_step() -> None:
    """Gemma 3 270M's tied q8_0 output is 63% of a token's weights: a prompt's logits and a decode
    step of two sequences run it on q8_0's kernels, whatever the layers are."""
    layers = {"Q4_K": 100_000_000}

    def perf(output: str) -> PerfModel:
        spec = catalog.model("gemma-3-270m").model_copy(
            update={"file_weight_types": {"layers": layers, "output": {output: 167_772_160}}}
        )
        hw = catalog.hardware("ryzen-9-9900x")  # AVX-512 VNNI/BF16: q8_0 and q4_K cells measured
        return PerfModel(Deployment.build(spec, "q4_k_m", [hw], "llamacpp", threads=1, context=1024))

    q8, q4 = perf("Q8_0"), perf("Q4_K")
    for batch in (4, 8):  # (one or two sequences stream the file: its bytes, not the kernels, bind)
        assert q8.decode_step_seconds(batch, 256) > 1.15 * q4.decode_step_seconds(batch, 256)
    assert q8.prefill_seconds(16) > 1.05 * q4.prefill_seconds(16)


def test_one_thread_streams_its_cores_probed_bandwidth() -> None:
    """The probe's one-reader figure already has the memory in its path: one thread streams it (the
    2-core VM of benchmarks/sizing_cpu.py: 28.7 GB/s alone, 43 GB/s for both cores), more threads
    approach the memory's peak and never pass it."""
    hw = catalog.hardware("ryzen-9-9900x").model_copy(
        update={"cores": 2, "core_bandwidth_bytes_per_s": 28.7e9, "memory_bandwidth_bytes_per_s": 43.25e9}
    )
    eff = efficiency_of(hw, "llamacpp")

    def stream(threads: int) -> float:
        return cpu_rates(hw, "f16", threads, eff, core_bandwidth=40e9).stream_bytes / eff.decode_bandwidth

    assert stream(1) == pytest.approx(28.7e9)
    assert 28.7e9 < stream(2) < 43.25e9


def _without_layer_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    from waveidp.sizing import _cpu

    bare = table().model_copy(update={"layer_step_flops": 0.0, "layer_token_flops": 0.0})
    monkeypatch.setattr(_cpu, "table", lambda: bare)


def test_each_layer_costs_its_other_ops_per_graph_and_per_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Besides its matmuls, a layer runs norms, rope, activations and ~25 op dispatches: a time per
    graph evaluation (one per 512-token ubatch) and per token, at the core's speed as calibrated."""
    spec = catalog.model("smollm2-135m")
    hw = catalog.hardware("ryzen-9-9900x")
    eff = efficiency_of(hw, "llamacpp")
    t = table()
    assert t.layer_step_flops > 0 and t.layer_token_flops > 0

    def perf(factors: Efficiency) -> PerfModel:
        return PerfModel(Deployment.build(spec, "q4_1", [hw], "llamacpp", threads=1, context=2048), factors)

    with_cost = {
        f: perf(eff.model_copy(update={"prefill_compute": f, "decode_compute": f})) for f in (1.0, 2.0)
    }
    _without_layer_cost(monkeypatch)
    bare = {f: perf(eff.model_copy(update={"prefill_compute": f, "decode_compute": f})) for f in (1.0, 2.0)}
    core = catalog.hardware("ryzen-9-9900x").dense_flops["fp32"] / hw.cores  # type: ignore[operator]
    for f in (1.0, 2.0):
        for n, evaluations in ((128, 1), (1000, 2)):
            extra = with_cost[f].prefill_seconds(n) - bare[f].prefill_seconds(n)
            want = spec.layers * (evaluations * t.layer_step_flops + n * t.layer_token_flops) / (core * f)
            assert extra == pytest.approx(want, rel=1e-6)
        # a decode step of 4 sequences is one graph evaluation of 4 tokens, outside the weight streaming
        extra = with_cost[f].engine_step_seconds(4, 256) - bare[f].engine_step_seconds(4, 256)
        assert extra == pytest.approx(
            spec.layers * (t.layer_step_flops + 4 * t.layer_token_flops) / (core * f)
        )


def test_the_layer_cost_weighs_on_narrow_models_not_wide_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """SmolLM2-135M's 30 layers of 576 do little matmul work per layer: their other ops are several
    percent of a token; an 8B's 32 layers of 4096 hide them."""
    hw = catalog.hardware("ryzen-9-9900x")

    def times() -> dict[str, tuple[float, float]]:
        out = {}
        for name, spec in (("small", catalog.model("smollm2-135m")), ("8b", LLAMA_31_8B)):
            p = PerfModel(Deployment.build(spec, "q4_0", [hw], "llamacpp", threads=1, context=2048))
            out[name] = (p.prefill_seconds(128), p.engine_step_seconds(1, 64))
        return out

    with_cost = times()
    _without_layer_cost(monkeypatch)
    bare = times()
    share = {k: [1 - b / w for w, b in zip(with_cost[k], bare[k], strict=True)] for k in with_cost}
    assert all(s > 0.05 for s in share["small"])
    assert all(0 < s < 0.01 for s in share["8b"])


def test_two_rows_of_a_q8_0_output_wait_on_memory_per_weight_row() -> None:
    """Two sequences' logits run tinyBLAS's 4 x 2 tiles over the output, which wait a memory latency
    per weight row (few_rows.py): on Gemma 3 270M's 262k x 640 q8_0 output two rows cost well over
    twice one row; more rows than the measurement covers go back onto the cell's curve."""
    hw = catalog.hardware("ryzen-9-9900x")  # avx512_vnni_bf16, the tier few_rows.py measured
    eff = efficiency_of(hw, "llamacpp")
    few = few_rows_for(hw.cpu_flags, "q8_0")
    assert few is not None and few.row_latency_s > 0
    rates = cpu_rates(hw, "q8_0", 1, eff, core_bandwidth=40e9)
    scale = hw.dense_flops["fp32"] / hw.cores * eff.prefill_compute  # type: ignore[operator]
    vocab, flops = 262_144, 2.0 * 640 * 262_144
    one = rates.logits_seconds(1, flops, vocab)
    assert one == pytest.approx(flops / rates.output_gemv_flops)
    for n, share in enumerate(few.shares, start=2):
        want = vocab * few.row_latency_s + n * flops / (scale * share)
        assert rates.logits_seconds(n, flops, vocab) == pytest.approx(want)
    assert rates.logits_seconds(2, flops, vocab) > 2.5 * one
    n = len(few.shares) + 2
    assert rates.logits_seconds(n, flops, vocab) == pytest.approx(n * flops / rates.logits_flops(n))
    # a tier without the measurement keeps its curve
    avx2 = tuple(f for f in hw.cpu_flags if not f.startswith("avx512"))
    assert few_rows_for(avx2, "q8_0") is None
    other = hw.model_copy(update={"cpu_flags": avx2})
    assert cpu_rates(other, "q8_0", 1, eff, core_bandwidth=40e9).output_few_flops == ()
