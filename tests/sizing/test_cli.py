"""`wave size`, `wave fit`, `wave claims` through the real entry point (python -m waveidp)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import wave_process

wave = wave_process


def test_size_json_is_the_estimate() -> None:
    out = wave(
        "size",
        "--model",
        "llama-3.1-8b",
        "--quant",
        "q4_k_m",
        "--device",
        "rtx-5070-ti",
        "--engine",
        "llamacpp",
        "--context",
        "8192",
        "--concurrency",
        "2",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "fits"
    assert data["memory"]["kv_bytes_per_token"] == 131072
    assert data["engine_flags"] == {"-ngl": 33, "-c": 16384, "-np": 2}
    assert data["performance"]["itl_ms"] > 0


def test_size_table_shows_verdict_reasons_and_flags() -> None:
    out = wave("size", "-m", "llama-3.3-70b", "-q", "q4_k_m", "-d", "rtx-5070-ti", "-d", "ryzen-9-9900x")
    assert out.returncode == 0, out.stderr
    assert "offload" in out.stdout
    assert "stay in system RAM" in out.stdout
    assert "engine flags: -ngl" in out.stdout


def test_size_with_tensor_parallel_uses_n_gpus() -> None:
    out = wave(
        "size",
        "-m",
        "llama-3.3-70b",
        "-q",
        "bf16",
        "-d",
        "h100-sxm",
        "--tp",
        "4",
        "--engine",
        "vllm",
        "--json",
    )
    data = json.loads(out.stdout)
    assert data["devices"] == ["h100-sxm"] * 4
    assert data["engine_flags"]["--tensor-parallel-size"] == 4
    assert data["verdict"] == "fits"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context", "-5"], "--context: --context -5 is out of range"),
        (["--concurrency", "0"], "--concurrency"),
        (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization"),
        (["--tp", "1000"], "--tp"),
        (["--arrival", "poisson"], "--arrival: unknown arrival pattern"),
    ],
)
def test_absurd_numbers_are_refused_naming_the_option(args: list[str], message: str) -> None:
    out = wave("size", "-m", "llama-3.1-8b", "-d", "rtx-4090", *args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_ids_suggest_the_closest() -> None:
    out = wave("size", "-m", "llama-3.1-8b", "-d", "rtx-5070ti")
    assert out.returncode == 2
    assert "rtx-5070-ti" in out.stderr
    out = wave("size", "-m", "lama-3.1-8b", "-d", "rtx-4090")
    assert out.returncode == 2 and "llama-3.1-8b" in out.stderr


def test_malformed_gguf_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    out = wave("size", "-m", bad, "-d", "rtx-4090")
    assert out.returncode == 2
    assert "broken.gguf" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_size_reads_a_real_gguf(smollm2_path: Path) -> None:
    out = wave("size", "-m", smollm2_path, "-d", "cpu-generic", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["quant"] == "q4_1" and data["engine"] == "llamacpp"
    assert data["memory"]["weights_bytes"] == smollm2_path.stat().st_size


def test_fit_ranks_the_fleet(repo_root: Path) -> None:
    out = wave("fit", "--fleet", repo_root / "examples" / "home-lab.yaml", "-m", "llama-3.1-8b", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows[0]["node"] == "schlimers-server" and rows[0]["verdict"] == "fits"
    verdicts = [r["verdict"] for r in rows]
    order = {"fits": 0, "tight": 1, "offload": 2, "impossible": 3}
    assert [order[v] for v in verdicts] == sorted(order[v] for v in verdicts)


def test_fit_without_fleet_sizes_this_machine() -> None:
    out = wave("fit", "-m", "smollm2-135m", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows and all(r["engine"] == "llamacpp" for r in rows)
    assert rows[0]["verdict"] == "fits"
    from waveidp.fleet.detect import detect_local_node

    cpu = next(d for d in detect_local_node().devices if d.id == "cpu")
    # a CPU the catalog lacks is named as detected, not as the placeholder entry it is sized over
    assert rows[0]["device_labels"] == [cpu.name if cpu.hardware == "cpu-generic" else cpu.hardware]
    if cpu.hardware == "cpu-generic":
        assert "cpu-g" not in wave("fit", "-m", "smollm2-135m").stdout


def test_claims_on_the_seed_file(repo_root: Path) -> None:
    out = wave("claims", repo_root / "examples" / "seed-claims.yaml", "--json")
    assert out.returncode == 0, out.stderr
    checks = {c["claim"]["id"]: c for c in json.loads(out.stdout)}
    hybrid = checks["70b-q4-hybrid-decode"]
    assert hybrid["verdict"] == "impossible"
    assert hybrid["bound"] < 65  # physics caps it far below the claimed 65-95 tok/s
    assert "GB/s (ryzen-9-9900x)" in hybrid["arithmetic"]
    assert checks["8b-fp8-vllm-single-stream-003"]["verdict"] == "plausible"
    assert all(c["claim"]["source"].startswith("seeds/") for c in checks.values())


def _size_json(device: str, concurrency: int) -> dict[str, object]:
    out = wave("size", "-m", "llama-3.1-8b", "-q", "q4_k_m", "-d", device, "--engine", "llamacpp",
               "--prompt-tokens", "542", "--output-tokens", "128", "--concurrency", str(concurrency),
               "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_size_on_h100_llamacpp_uses_the_shipped_h100_calibration() -> None:
    """Not the generic GPU defaults: the H100 entry of efficiency.yaml, measured on that GPU
    (benchmarks/results/gpu: q4_k_m ITL 4.66 ms alone; with 64 clients sending together the TTFT is a
    queue behind their prompts and llama-server's prompt-cache saves)."""
    from waveidp.sizing._efficiency import _shipped

    kinds, devices = _shipped()
    h100, generic = devices["h100-sxm"]["llamacpp"], kinds["gpu"]["llamacpp"]
    r = _size_json("h100-sxm", 1)
    eff = r["efficiency"]
    assert isinstance(eff, dict)
    assert eff["source"] == h100.source and "H100" in eff["source"]
    assert eff["decode_bandwidth"] == pytest.approx(h100.decode_bandwidth_for("q4_k_m"))
    assert eff["prefill_compute"] == h100.prefill_compute != generic.prefill_compute
    perf = r["performance"]
    assert isinstance(perf, dict)
    assert perf["itl_ms"] == pytest.approx(4.66, rel=0.1)  # the generic defaults say 2.5 ms
    perf64 = _size_json("h100-sxm", 64)["performance"]
    assert isinstance(perf64, dict)
    assert perf64["ttft_ms"] > 5 * perf["ttft_ms"]
    # a GPU without a measured entry still gets the kind's defaults
    # the other Hopper GPUs share the H100's measured factors (with their own peaks)
    for hopper in ("h100-pcie", "h200"):
        hop = _size_json(hopper, 1)["efficiency"]
        assert isinstance(hop, dict) and hop["source"] == h100.source
    other = _size_json("l40s", 1)["efficiency"]
    assert isinstance(other, dict) and other["source"] == generic.source


def test_size_arrival_steady_predicts_no_convoy_at_the_same_concurrency() -> None:
    """--arrival reaches the model: clients that start together queue behind each other's prompts
    (TTFT grows with c), spread-out clients mostly do not; ITL is about the same."""
    base = ["size", "-m", "llama-3.1-8b", "-q", "q8_0", "-d", "h100-sxm", "-e", "llamacpp"]
    got = {}
    for arrival in ("burst", "steady"):
        out = wave(*base, "--concurrency", "32", "--arrival", arrival, "--json")
        assert out.returncode == 0, out.stderr
        got[arrival] = json.loads(out.stdout)["performance"]
    assert got["burst"]["ttft_ms"] > 3 * got["steady"]["ttft_ms"]
    assert got["steady"]["itl_ms"] == pytest.approx(got["burst"]["itl_ms"], rel=0.5)
