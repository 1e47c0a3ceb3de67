"""`wave fleet detect --calibrate` end to end: the real llama-bench on SmolLM2 with one thread, the
fit stored with the node in the fleet file, and `wave size` using it afterwards."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support import wave_process
from waveidp import fleet
from waveidp.bench.node_calibration import FITTED

pytestmark = pytest.mark.engine


wave = functools.partial(wave_process, timeout=120)  # real llama-bench runs


def test_calibrate_measures_fits_stores_and_is_used(tmp_path: Path, smollm2_path: Path) -> None:
    target = tmp_path / "wave.yaml"
    args = ["--name", "box", "--calibrate", "--no-packaged", "--model", smollm2_path]
    result = wave("fleet", "detect", *args, "--threads", "1", "--reps", "1", "--merge", target)
    assert result.returncode == 0, result.stderr
    assert "median error, prompt processing:" in result.stderr
    assert "median error, token generation:" in result.stderr

    node = fleet.load(target).node("box")
    cpu = next(d for d in node.devices if d.id == "cpu")
    cal = cpu.calibration["llamacpp"]
    # the compute scales; the bandwidth and step overhead only where a test sees them (one thread of
    # a 135M model: neither)
    assert {"prefill_compute", "decode_compute"} <= set(cal.factors) <= set(FITTED)
    assert datetime.now(UTC) - datetime.fromisoformat(cal.measured_at) < timedelta(minutes=10)
    assert "llama-bench" in cal.method and smollm2_path.name in cal.method and "threads 1" in cal.method
    assert cal.points == 2  # pp128 and tg32
    # the fit reproduces what it measured
    assert cal.error_after["pp"] < 0.05 and cal.error_after["tg"] < 0.05

    # every later sizing of this node's CPU uses the stored factors
    size = wave(
        "size", "-m", smollm2_path, "--fleet", target, "--device", "box/cpu", "-t", "1",
        "--prompt-tokens", "128", "--output-tokens", "32", "--context", "512", "--json",
    )  # fmt: skip
    assert size.returncode == 0, size.stderr
    doc = json.loads(size.stdout)
    assert "calibrated on its node" in doc["efficiency"]["source"]
    assert doc["efficiency"]["prefill_compute"] == pytest.approx(cal.factors["prefill_compute"])

    # a later detect without --calibrate keeps the node's calibration
    again = wave("fleet", "detect", "--name", "box", "--merge", target, "--no-probe")
    assert again.returncode == 0, again.stderr
    kept = next(d for d in fleet.load(target).node("box").devices if d.id == "cpu")
    assert kept.calibration["llamacpp"] == cal


def test_calibrate_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    missing = wave("fleet", "detect", "--calibrate", "--model", tmp_path / "none.gguf", "--no-probe")
    assert missing.returncode == 2 and "none.gguf" in missing.stderr and "Traceback" not in missing.stderr
    nothing = wave("fleet", "detect", "--calibrate", "--no-packaged", "--no-probe")
    assert nothing.returncode == 2 and "nothing to calibrate on" in nothing.stderr
    threads = wave("fleet", "detect", "--calibrate", "--threads", "0,x", "--no-probe")
    assert threads.returncode == 2 and "--threads" in threads.stderr
