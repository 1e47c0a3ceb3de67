"""`wave fleet detect --calibrate` on a node with an NVIDIA GPU. No GPU here: the fit-and-store path
runs on what the real command measured on an H100 (`benchmarks/results/gpu/calibrate/wave.yaml`,
`wave calibrate --quick --device gpu0` there), and the refusals run for real (this machine's
llama-bench is a CPU build; NVML finds no GPU)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from support import wave_process
from waveidp import catalog, fleet
from waveidp.bench import gpu_calibration
from waveidp.bench.llama_bench import BenchRow
from waveidp.bench.quick_fit import Measured
from waveidp.cli._calibrate import devices_to_calibrate, gpu_index, stored, with_calibration
from waveidp.fleet import Calibration, Device, Node, device_hardware
from waveidp.sizing import efficiency_of

RESULT = Path(__file__).resolve().parents[2] / "benchmarks/results/gpu/calibrate/wave.yaml"
# the files the command ran, by the catalog model they are copies of
CATALOG_ID = {"SmolLM2": "smollm2-135m", "gemma-3-270m": "gemma-3-270m", "llama-3.2-3b": "llama-3.2-3b"}


wave = wave_process


def _h100() -> tuple[Node, Calibration, list[Measured]]:
    node = fleet.load(RESULT).node("h100")
    gpu = next(d for d in node.devices if d.id == "gpu0")
    cal = gpu.calibration["llamacpp"]
    tests = []
    for p in cal.measurements:
        model = next(v for k, v in CATALOG_ID.items() if k in p.model)
        row = BenchRow(
            Path(p.model), p.threads, p.n_prompt, p.n_gen, p.tokens_per_s, p.tokens_per_s, (p.tokens_per_s,),
            "(recorded)", gpu_layers=p.gpu_layers, backends="CUDA",
        )  # fmt: skip
        tests.append(Measured(row, catalog.model(model), p.quant))
    bare = node.model_copy(
        update={"devices": [d.model_copy(update={"calibration": {}}) for d in node.devices]}
    )
    return bare, cal, tests


def test_h100_rows_are_fitted_stored_with_the_gpu_and_used_by_size(tmp_path: Path) -> None:
    node, measured, tests = _h100()
    assert len(tests) == 9 and all(t.row.gpu_layers == 99 for t in tests)
    gpu = next(d for d in node.devices if d.id == "gpu0")
    hw = device_hardware(gpu, node)
    result = gpu_calibration.calibration(hw, tests, efficiency_of(hw, "llamacpp"))
    # the refit (models described by their catalog entries, not the files) lands where the command's did
    assert result.factors().keys() == measured.factors.keys()
    for name, value in measured.factors.items():
        assert result.factors()[name] == pytest.approx(value, rel=0.1), name
    assert result.error(result.fitted)["tg"] < 0.5 * result.error(result.prior)["tg"]

    path = tmp_path / "wave.yaml"
    path.write_text(fleet.dump(fleet.Fleet(nodes=[with_calibration(node, "gpu0", stored(result))])))
    back = next(d for d in fleet.load(path).node("h100").devices if d.id == "gpu0")
    cal = back.calibration["llamacpp"]
    assert cal.points == 9 and {m.gpu_layers for m in cal.measurements} == {99}
    assert cal.error_before.keys() == cal.error_after.keys() == {"pp", "tg"}

    plain = tmp_path / "plain.yaml"
    plain.write_text(fleet.dump(fleet.Fleet(nodes=[node])))
    args = ("size", "-m", "llama-3.2-3b", "-q", "q5_k_m", "--device", "h100/gpu0", "--json", "--fleet")
    before, after = (json.loads(wave(*args, f).stdout) for f in (plain, path))
    assert after["efficiency"]["source"].startswith("calibrated on its node")
    assert after["efficiency"]["prefill_compute"] == cal.factors["prefill_compute"]
    # the H100 reached less of its tensor peak on these prompts than the shipped entry assumed
    prior = efficiency_of(hw, "llamacpp")
    assert cal.factors["prefill_compute"] < 0.95 * prior.prefill_compute
    assert after["performance"]["prefill_tokens_per_s"] < 0.97 * before["performance"]["prefill_tokens_per_s"]
    assert after["performance"]["ttft_ms"] > before["performance"]["ttft_ms"]


def test_rows_that_ran_on_the_cpu_are_not_a_gpu_calibration() -> None:
    node, _, tests = _h100()
    hw = device_hardware(next(d for d in node.devices if d.id == "gpu0"), node)
    on_cpu = Measured(replace(tests[0].row, backends="CPU"), tests[0].spec, tests[0].quant)
    with pytest.raises(gpu_calibration.GpuCalibrationError, match="did not run on a GPU"):
        gpu_calibration.calibration(hw, [on_cpu, *tests[1:]], efficiency_of(hw, "llamacpp"))


@pytest.mark.engine
def test_a_cpu_build_of_llama_bench_is_refused_for_the_gpu() -> None:
    from waveidp.engines.local_files import llama_tool

    with pytest.raises(gpu_calibration.GpuCalibrationError, match="cannot run on the GPU") as err:
        gpu_calibration.cuda_device(llama_tool("llama-bench"), 0, "NVIDIA H100 80GB HBM3")
    assert "WAVE_LLAMA_BIN_DIR" in (err.value.fix or "")


def test_which_devices_are_calibrated() -> None:
    cpu = Device(id="cpu", hardware="cpu-generic")
    h100 = Device(id="gpu0", hardware="h100-sxm", name="NVIDIA H100 80GB HBM3")
    unknown = Device(id="gpu1", hardware="some-new-gpu", name="NVIDIA Next")
    node = Node(name="n", address="local", devices=[cpu, h100, unknown])
    assert [d.id for d in devices_to_calibrate(node, None)] == ["gpu0", "cpu"]  # GPUs first: seconds
    assert [d.id for d in devices_to_calibrate(node, ["gpu0"])] == ["gpu0"]
    cpu_only = Node(name="n", address="local", devices=[cpu])
    assert [d.id for d in devices_to_calibrate(cpu_only, None)] == ["cpu"]
    # llama-bench is pointed at a GPU by NVML's index, as `wave render` numbers them
    two = Device(id="gpu0", hardware="h100-sxm", count=2)
    other = Device(id="gpu1", hardware="rtx-5070-ti")
    mixed = Node(name="n", address="local", devices=[cpu, two, other])
    assert [gpu_index(mixed, d) for d in (two, other)] == [0, 2]


def test_asking_for_a_gpu_this_node_lacks_exits_2_before_measuring(tmp_path: Path) -> None:
    target = tmp_path / "wave.yaml"
    r = wave("fleet", "detect", "--calibrate", "--device", "gpu0", "--no-probe", "--merge", target)
    assert r.returncode == 2 and "no device 'gpu0'" in r.stderr and "Traceback" not in r.stderr
    assert not target.exists()
    r = wave("calibrate", "--device", "gpu0", tmp_path / "results.json")
    assert r.returncode == 2 and "--device is only used with --quick" in r.stderr


def test_router_prior_uses_the_gpus_calibration() -> None:
    from waveidp.fleet import Backend, ServedModel
    from waveidp.gateway.build import backend_from_fleet

    node, measured, _ = _h100()
    served = ServedModel(name="llama-3b", model="llama-3.2-3b", quant="q5_k_m")
    backend = Backend(
        name="b", engine="llamacpp", url="http://127.0.0.1:9", models=[served], devices=["gpu0"]
    )
    plain = node.model_copy(update={"backends": [backend]})

    def ttft_s(n: Node) -> float:
        (p,) = backend_from_fleet(n, backend).predictions.values()
        return p.ttft_s(2048)

    assert ttft_s(with_calibration(plain, "gpu0", measured)) > 1.05 * ttft_s(plain)  # 17% less of the peak


def test_a_jetson_is_calibrated_through_its_gpu() -> None:
    """A Jetson node has one SoC device (no CPU device of its own, no NVML): `--calibrate` measures it
    with the CUDA llama-bench on its integrated GPU (index 0) and fits the SoC's factors; before, the
    command refused the node ("no CPU device to calibrate")."""
    soc = Device(id="soc", hardware="jetson-orin-nano-super", name="NVIDIA Jetson Orin Nano Developer Kit")
    node = Node(name="jetson", address="local", devices=[soc])
    assert [d.id for d in devices_to_calibrate(node, None)] == ["soc"]
    assert [d.id for d in devices_to_calibrate(node, ["soc"])] == ["soc"]
    assert gpu_index(node, soc) == 0

    # llama-bench rows as a Jetson whose decode step costs 8 ms more than the SoC prior's (its 1.96 M
    # cycles, 1.9 ms at 1.02 GHz) would give them
    hw = device_hardware(soc, node)
    prior = efficiency_of(hw, "llamacpp")
    slow_steps = prior.model_copy(update={"step_overhead_s": 0.008})
    tests = []
    for model, quant in (("smollm2-135m", "q4_1"), ("gemma-3-270m", "q4_k_m")):
        for n_prompt, n_gen in ((128, 0), (512, 0), (0, 128)):
            row = BenchRow(
                Path(f"{model}.gguf"), 6, n_prompt, n_gen, 1.0, 1.0, (1.0,), "(modelled)",
                gpu_layers=99, backends="CUDA",
            )  # fmt: skip
            m = Measured(row, catalog.model(model), quant)
            rate = gpu_calibration.predict_tokens_per_s(hw, m, slow_steps)
            tests.append(Measured(replace(row, tokens_per_s=rate, mean_tokens_per_s=rate), m.spec, quant))
    result = gpu_calibration.calibration(hw, tests, prior)
    # two small models' tg tests share the step between the fixed cost and the CUDA-core share the
    # prior now has as well (fitted too): the step comes back within 20%, the tg rates within 5%
    assert result.fitted.step_overhead_s == pytest.approx(0.008, rel=0.2)
    assert result.error(result.fitted)["tg"] < 0.05 < result.error(result.prior)["tg"]
    stored_node = with_calibration(node, "soc", stored(result))
    calibrated = device_hardware(next(d for d in stored_node.devices if d.id == "soc"), stored_node)
    assert efficiency_of(calibrated, "llamacpp").step_overhead_s == pytest.approx(
        result.fitted.step_overhead_s, rel=1e-3
    )
