"""Predictions against published measurements (tests/sizing/data/published.yaml).

Every row is predicted with the shipped efficiency defaults (no calibration) and must land within
the file's tolerance; the error of every row is printed (`pytest -s`) so the report shows it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from waveidp import catalog
from waveidp.catalog import Hardware, ModelSpec
from waveidp.sizing import Deployment, PerfModel, SizingRequest, estimate

DATA = yaml.safe_load((Path(__file__).parent / "data" / "published.yaml").read_text())
TOLERANCE = float(DATA["tolerance"])
GEOMEAN_TOLERANCE = float(DATA["geomean_tolerance"])
HARDWARE = {k: Hardware(id=k, **v) for k, v in DATA["hardware"].items()}
MODELS = {k: ModelSpec(id=k, **v) for k, v in DATA["models"].items()}


def predict(row: dict[str, Any]) -> float:
    model = MODELS.get(row["model"]) or catalog.model(row["model"])
    devices = [HARDWARE.get(d) or catalog.hardware(d) for d in row["devices"]]
    kw: dict[str, Any] = {"context": max(4096, row.get("prompt_tokens", 0) + row.get("output_tokens", 0))}
    if "threads" in row:
        kw["threads"] = row["threads"]
    d = Deployment.build(model, row["quant"], devices, row["engine"], **kw)
    metric = row["metric"]
    if metric in ("itl_ms", "output_tokens_per_s", "ttft_ms") or (
        metric == "decode_tokens_per_s" and "batch" not in row
    ):
        r = estimate(
            SizingRequest(
                deployment=d,
                prompt_tokens=row["prompt_tokens"],
                output_tokens=row["output_tokens"],
                concurrency=row["concurrency"],
            )
        )
        point = next(p for p in r.curve if p.concurrency == r.performance.concurrency)
        return {
            "itl_ms": point.itl_ms,
            "output_tokens_per_s": point.output_tokens_per_s,
            "ttft_ms": point.ttft_ms,
            "decode_tokens_per_s": 1000.0 / point.itl_ms,
        }[metric]
    perf = PerfModel(d)
    if metric == "prefill_tokens_per_s":
        return row["prompt_tokens"] / perf.prefill_seconds(row["prompt_tokens"])
    batch = row["batch"]
    return batch / perf.decode_step_seconds(batch, row["context"])


@pytest.mark.parametrize("row", DATA["measurements"], ids=[m["id"] for m in DATA["measurements"]])
def test_prediction_within_tolerance_of_published_measurement(row: dict[str, Any]) -> None:
    assert row["url"].startswith("https://") and len(row["quote"]) > 10
    predicted = predict(row)
    ratio = predicted / row["measured"]
    print(
        f"\n{row['id']}: measured {row['measured']:g} {row['metric']}, predicted {predicted:.4g}, "
        f"ratio {ratio:.2f}"
    )
    assert 1 / TOLERANCE <= ratio <= TOLERANCE, f"{row['id']}: predicted/measured = {ratio:.2f}"


def test_geometric_mean_error_over_all_published_rows() -> None:
    ratios = [predict(row) / row["measured"] for row in DATA["measurements"]]
    factor = math.exp(sum(abs(math.log(r)) for r in ratios) / len(ratios))
    print(f"\ngeometric-mean error factor over {len(ratios)} published measurements: {factor:.2f}x")
    assert factor <= GEOMEAN_TOLERANCE
