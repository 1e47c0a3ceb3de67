"""Round 5 (issue 7): fit llama-server's host prompt-cache save term and refit prefill without it.

call 11 ran the same 8B q8_0 bursts (542-token prompts, c = 4, 8, 16) on fresh servers with the
host prompt cache on (llama-server's default) and off (--cache-ram 0). Every other factor of the
round-3 H100 entry stays fixed:

1. prefill_compute: fitted on the cache-OFF TTFTs (no save term there);
2. prompt_cache_save_bytes_per_s: fitted on the cache-ON points (TTFT, ITL, tok/s) with that
   prefill, i.e. on what the cache adds over cache-off.

    .venv/bin/python benchmarks/gpu/fit_prompt_cache.py      # prints the two factors, writes JSON

Writes benchmarks/results/gpu/prompt_cache_fit.json (factors, objective, the per-point errors).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from log_fit import golden, log_loss

from waveidp.bench.predict import predict_runs
from waveidp.sizing import Efficiency

os.environ["WAVE_HOME"] = tempfile.mkdtemp(prefix="wave-gpu-fit-")
ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "benchmarks/results/gpu/runs"
OUT = ROOT / "benchmarks/results/gpu/prompt_cache_fit.json"
CACHE_ON = "llama8b-q8_0-r4c-cacheon/burst512"
CACHE_OFF = "llama8b-q8_0-r4c-cacheoff/burst512"
# The shipped round-3 entry (efficiency.yaml before round 5): everything but the two fitted factors.
ROUND3 = Efficiency(
    decode_bandwidth=0.799,
    decode_bandwidth_by_quant={"q4_k_m": 0.68},
    prefill_compute=0.0355,
    decode_compute=0.235,
    step_overhead_s=0.00132,
    first_token_s=0.0456,
    sequence_step_s=0.000381,
    sequence_step_s_per_vocab=3.07e-9,
    source="round 3",
)
KEYS = ("ttft_ms", "itl_ms", "output_tokens_per_s")


def load(rel: str, *, cache: bool = True) -> dict[str, Any]:
    doc = json.loads((RUNS / rel / "results.json").read_text())
    if not cache:
        doc = copy.deepcopy(doc)
        doc["deployment"] = {**doc["deployment"], "prompt_cache": False}
    return doc


def main() -> None:
    off, on = load(CACHE_OFF, cache=False), load(CACHE_ON)

    def off_loss(pc: float) -> float:
        return log_loss(predict_runs(off, ROUND3.model_copy(update={"prefill_compute": pc})), ("ttft_ms",))

    prefill = round(golden(off_loss, 0.005, 0.5, 60), 4)
    base = ROUND3.model_copy(update={"prefill_compute": prefill})

    def on_loss(rate: float) -> float:
        eff = base.model_copy(update={"prompt_cache_save_bytes_per_s": rate})
        return log_loss(predict_runs(on, eff), KEYS)

    rate = float(f"{golden(on_loss, 1e8, 1e11, 60):.3g}")
    fitted = base.model_copy(update={"prompt_cache_save_bytes_per_s": rate})
    rows = {"cache off": predict_runs(off, fitted), "cache on": predict_runs(on, fitted)}
    result = {
        "prefill_compute": prefill,
        "prompt_cache_save_bytes_per_s": rate,
        "loss_cache_off_ttft": off_loss(prefill),
        "loss_cache_on": on_loss(rate),
        "points": {
            name: [
                {
                    "c": r["concurrency"],
                    **{k: [r[k]["measured"], r[k]["predicted"], r[k]["error_pct"]] for k in KEYS},
                }
                for r in rs
            ]
            for name, rs in rows.items()
        },
        "fitted_on": [f"benchmarks/results/gpu/runs/{CACHE_OFF}", f"benchmarks/results/gpu/runs/{CACHE_ON}"],
        "command": ".venv/bin/python benchmarks/gpu/fit_prompt_cache.py",
    }
    OUT.write_text(json.dumps(result, indent=1))
    print(f"prefill_compute {prefill} (round 3: {ROUND3.prefill_compute}), "
          f"prompt_cache_save_bytes_per_s {rate:.3g} ({rate / 1e9:.2f} GB/s)")  # fmt: skip
    for name, pts in result["points"].items():
        for p in pts:
            cells = "  ".join(f"{k} {p[k][0]:.4g}/{p[k][1]:.4g} ({p[k][2]:+.0f}%)" for k in KEYS)
            print(f"{name:9} c={p['c']:<3} {cells}")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
