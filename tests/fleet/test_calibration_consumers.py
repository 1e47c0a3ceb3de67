"""A node's stored calibration reaches every consumer of the fleet file: `wave fit`, `wave plan`
and the router's prior (`wave size` is checked end to end in test_fleet_calibrate.py).

The calibration here is written by hand (a node whose CPU measured half the prior's speed), so
these run without llama-bench; what they check is that each consumer reads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import wave_process
from waveidp import fleet
from waveidp.fleet import Calibration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "home-lab.yaml"
NODE = "schlimers-server"
# a CPU half as fast as the prior in both phases (factors are scales on the kernel table)
SLOW = {"prefill_compute": 0.5, "decode_compute": 0.5, "decode_bandwidth": 0.3, "step_overhead_s": 0.002}


def _with_cpu_calibration(factors: dict[str, float] | None, node_name: str = NODE) -> fleet.Fleet:
    f = fleet.load(EXAMPLE)
    if factors is None:
        return f
    cal = Calibration(factors=factors, measured_at="2026-01-01T00:00:00+00:00", method="test", points=2)
    nodes = [
        n.model_copy(
            update={
                "devices": [
                    d.model_copy(update={"calibration": {"llamacpp": cal}}) if d.id == "cpu" else d
                    for d in n.devices
                ]
            }
        )
        if n.name == node_name
        else n
        for n in f.nodes
    ]
    return f.model_copy(update={"nodes": nodes})


def _write(tmp_path: Path, f: fleet.Fleet, name: str) -> Path:
    path = tmp_path / name
    path.write_text(fleet.dump(f), encoding="utf-8")
    return path


def test_fit_ranks_with_the_nodes_calibration(tmp_path: Path) -> None:
    def cpu_row(path: Path) -> dict[str, object]:
        r = subprocess.run(
            [sys.executable, "-m", "waveidp", "fit", "--fleet", path, "-m", "llama-3.2-1b", "-q", "q4_k_m",
             "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)
        return next(x for x in rows if x["node"] == "xps15")

    plain = _write(tmp_path, _with_cpu_calibration(None), "plain.yaml")
    slow = _write(tmp_path, _with_cpu_calibration(SLOW, "xps15"), "slow.yaml")
    before, after = cpu_row(plain), cpu_row(slow)
    assert after["decode_tokens_per_s"] < 0.8 * before["decode_tokens_per_s"]  # type: ignore[operator]
    assert after["ttft_ms"] > 1.5 * before["ttft_ms"]  # type: ignore[operator]


def test_plan_counts_a_calibrated_node_as_measured() -> None:
    from waveidp.plan import make_plan

    def flagged(f: fleet.Fleet) -> list[str]:
        return [u for u in make_plan(f).uncertainties if "9900X" in u and "no calibration" in u]

    assert flagged(_with_cpu_calibration(None))
    assert not flagged(_with_cpu_calibration(SLOW))


def test_router_prior_uses_the_nodes_calibration() -> None:
    from waveidp.gateway.build import backend_from_fleet

    def prediction(f: fleet.Fleet) -> tuple[float, float]:
        node = f.node(NODE)
        backend = next(b for b in node.backends if b.engine == "llamacpp")
        state = backend_from_fleet(node, backend)
        (p,) = state.predictions.values()
        return p.ttft_s(512), p.itl_s(1, 1024)

    ttft0, itl0 = prediction(_with_cpu_calibration(None))
    ttft1, itl1 = prediction(_with_cpu_calibration(SLOW))
    assert ttft1 == pytest.approx(2 * ttft0, rel=0.25)  # prefill is compute-bound: half the scale
    assert itl1 > 1.2 * itl0


def test_calibrate_quick_and_results_are_one_or_the_other(tmp_path: Path) -> None:
    wave = wave_process
    nothing = wave("calibrate")
    assert nothing.returncode == 2 and "--quick" in nothing.stderr and "Traceback" not in nothing.stderr
    both = wave("calibrate", "--quick", tmp_path / "results.json", "--fleet", tmp_path / "wave.yaml")
    assert both.returncode == 2 and "no results files" in both.stderr
    assert not (tmp_path / "wave.yaml").exists()
