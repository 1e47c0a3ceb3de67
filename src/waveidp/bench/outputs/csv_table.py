"""`results.csv`: one row per request of every load point (`warmup` rows are excluded from summaries)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from waveidp.bench.outputs.results_json import run_label

COLUMNS = (
    "load_point",
    "scheduled_s",
    "sent_s",
    "first_token_s",
    "done_s",
    "ttft_ms",
    "itl_ms",
    "e2e_ms",
    "client_lag_ms",
    "input_tokens",
    "input_token_source",
    "output_tokens",
    "output_token_source",
    "status",
    "warmup",
    "error",
    "error_detail",
)


def write_csv(doc: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / "results.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for run in doc["runs"]:
            label = run_label(run)
            for row in run["requests"]:
                w.writerow([label, *(row.get(c) for c in COLUMNS[1:])])
    return path
