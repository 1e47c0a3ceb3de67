"""Claims files: YAML and CSV rows, ranges, verdict thresholds, and errors that name the row."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveidp.errors import ConfigError
from waveidp.sizing._claims import Claim, check_claim, load_claims


def test_csv_and_ranges(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(
        "device,model,quant,engine,metric,value,source,note\n"
        "rtx-4090,llama-3.1-8b,q4_k_m,llamacpp,decode_tokens_per_s,120-140,vendor blog,\n"
        "rtx-5070-ti+ryzen-9-9900x,llama-3.3-70b,q4_k_m,llamacpp,decode_tokens_per_s,80,forum,\n"
    )
    claims = load_claims(path)
    assert claims[0].value == (120.0, 140.0)
    assert claims[1].device == ["rtx-5070-ti", "ryzen-9-9900x"]


def test_bad_row_names_file_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text("device,model,metric,value\nrtx-4090,llama-3.1-8b,decode_tokens_per_s,fast\n")
    with pytest.raises(ConfigError, match=r"claims.csv:2.value"):
        load_claims(path)
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n  - {device: rtx-4090, model: llama-3.1-8b, metric: speed, value: 3}\n")
    with pytest.raises(ConfigError, match=r"claims\[0\].metric"):
        load_claims(path)


def _claim(metric: str, value: float, **kw: object) -> Claim:
    return Claim.model_validate(
        {
            "device": "rtx-4090",
            "model": "llama-3.1-8b",
            "quant": "q4_k_m",
            "engine": "llamacpp",
            "metric": metric,
            "value": value,
            **kw,
        }
    )


def test_decode_verdicts_follow_bound_and_prediction() -> None:
    base = check_claim(_claim("decode_tokens_per_s", 1))
    assert base.verdict == "plausible"
    assert base.bound is not None and base.predicted is not None and base.predicted < base.bound
    between = (base.predicted * 1.5 + base.bound) / 2  # beyond the prediction, under the bound
    assert check_claim(_claim("decode_tokens_per_s", between)).verdict == "optimistic"
    assert check_claim(_claim("decode_tokens_per_s", base.bound * 1.05)).verdict == "impossible"


def test_memory_below_the_weights_is_impossible() -> None:
    c = check_claim(_claim("memory_gb", 3.0))  # Q4_K_M 8B weights alone are 4.9 GB
    assert c.verdict == "impossible"
    assert c.arithmetic.startswith("weights 4.9")


def test_concurrency_beyond_memory_is_impossible() -> None:
    c = check_claim(_claim("max_concurrency", 500, context=32768))
    assert c.verdict == "impossible"
