"""Predictions against the published validation set (tests/sizing/data/published.yaml, reported by
benchmarks/validation_set.py): every row predicted with the shipped factors, no calibration.

Issue 18's targets per device class, engine and metric: median error <= 25% on decode, <= 35% on
prompt processing, no row beyond 2x. Where a row or a group misses, it is listed below with the
reason (docs/sizing.md, "Accuracy") and bounded, so that a change making it worse fails.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import validation_set as vs

ROWS, GROUPS = vs.evaluate()
CHECKED = [r for r in ROWS if not r.get("factor_source")]
# rows beyond 2x: id -> (lowest, highest) predicted/measured, and why (docs/sizing.md, "Accuracy")
KNOWN_MISSES = {
    # yzma's loop: 25 tokens of a 135M model per run, greedy sampling and detokenizing each token
    # through a Go binding: 8.3 ms per decode call on the Orin, which the model (1 ms assumed step
    # overhead) does not have
    "jetson-orin-nano-super-llamacpp-smollm-135m-q2_k-run": (2.3, 3.5),
    # the 7W mode (half the GPU's SMs at 408 MHz, four A78 cores at 960 MHz): the per-token time
    # outside the weights grows past what the clock-scaled split predicts; not understood further
    "jetson-orin-nano-7w-llamacpp-smollm2-135m-q4_k_m-decode-c1": (2.9, 4.3),
    "jetson-orin-nano-7w-llamacpp-smollm2-360m-q8_0-decode-c1": (1.8, 2.7),
    "jetson-orin-nano-7w-llamacpp-qwen2.5-0.5b-q4_k_m-decode-c1": (2.5, 3.7),
    "jetson-orin-nano-7w-llamacpp-qwen3-0.6b-q8_0-decode-c1": (2.5, 3.7),
    "jetson-orin-nano-7w-llamacpp-llama-3.2-1b-q4_k_m-decode-c1": (3.0, 4.6),
    "jetson-orin-nano-7w-llamacpp-gemma-3-1b-q4_k_m-decode-c1": (3.3, 4.9),
    # the H100 sweep tops out at ~1.35k tokens/s outside the GPU step (its client, LiteLLM in Python,
    # the likely ceiling): 16 and 64 clients get the same throughput, TPOT grows 4.3x for 4x the clients
    "h100-vllm-llama31-8b-itl-c64": (4.5, 8.0),
}
# groups over a median target: (class, engine, metric) -> highest median error
KNOWN_GROUP_MISSES = {
    # 1B-and-smaller models through llama-server at 2048-token prompts: a per-token cost outside the
    # weights, and the 7W mode (docs/sizing.md)
    ("Jetson Orin Nano", "llama.cpp CUDA", "decode"): 0.55,
    # CPU rows from a llama.cpp of Sep 2024, before the q4_0 repack (PR 10446); the 5975WX's eight
    # decode threads bound by its chiplets' fabric (55-69 GB/s), which the model does not have, so the
    # AVX2 cells measured with per-repetition CPU time (faster decode) move them up one for one; the
    # 13900HX at its base clock plus yzma's per-token host work (docs/sizing.md, "Rows beyond 1.5x")
    # (the i5-4278U's 2025+ build, 1.32x, is the one post-repack row)
    ("AVX2-only CPU (laptop i9 class)", "llama.cpp CPU", "decode"): 0.6,
    ("Zen 4/5 AVX-512 desktop (Ryzen 9 9900X class)", "llama.cpp CPU", "decode"): 0.3,
    ("Zen 4/5 AVX-512 desktop (Ryzen 9 9900X class)", "llama.cpp CPU", "prompt"): 0.5,
}


def test_the_set_holds_60_sourced_rows_and_every_class_of_the_reference_fleet() -> None:
    assert len(ROWS) >= 60
    for row in ROWS:
        assert row["url"].startswith("https://") and len(row["quote"]) > 10, row["id"]
    classes = {r["class"] for r in CHECKED}
    for fleet_device in ("rtx-5070-ti", "gtx-1650", "ryzen-9-9900x", "i9-9980hk", "jetson-orin-nano-super"):
        assert vs.CLASSES[fleet_device] in classes, fleet_device
    assert vs.CLASSES["core-ultra-7-258v-npu"] in {r["class"] for r in ROWS}


@pytest.mark.parametrize("row", CHECKED, ids=[r["id"] for r in CHECKED])
def test_each_published_row_within_2x_or_its_stated_bound(row: dict[str, Any]) -> None:
    lo, hi = KNOWN_MISSES.get(row["id"], (1 / vs.TARGET_WORST, vs.TARGET_WORST))
    assert lo <= row["ratio"] <= hi, f"{row['id']}: predicted/measured {row['ratio']:.2f}"


def test_rows_a_factor_comes_from_reproduce_it() -> None:
    sources = [r for r in ROWS if r.get("factor_source")]
    assert sources
    for row in sources:
        assert 0.8 <= row["ratio"] <= 1.25, (row["id"], row["ratio"])


@pytest.mark.parametrize("group", GROUPS, ids=[f"{g['class']}|{g['backend']}|{g['metric']}" for g in GROUPS])
def test_median_error_per_class_engine_and_metric(group: dict[str, Any]) -> None:
    key = (group["class"], group["backend"], group["metric"])
    limit = KNOWN_GROUP_MISSES.get(key, vs.TARGET_MEDIAN[group["metric"]])
    assert group["median_error"] <= limit, key
