"""`results.csv`: one row per request of every load point (`warmup` rows are excluded from summaries)."""

from __future__ import annotations

import csv
from pathlib import Path

from waveidp.bench.report import BenchReport, RequestRow

# every field of a request row but the chunk times and counts and the resend count
_LEFT_OUT = ("content_chunks", "attempts", "chunk_ms")
COLUMNS = ("load_point", *(f for f in RequestRow.model_fields if f not in _LEFT_OUT))


def write_csv(report: BenchReport, out_dir: Path) -> Path:
    path = out_dir / "results.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for run in report.runs:
            for row in run.requests:
                w.writerow([run.label, *(getattr(row, c) for c in COLUMNS[1:])])
    return path
