"""Every output of a run into one folder: results.json, CSV, and with `plots` the PNGs and the HTML report."""

from __future__ import annotations

from pathlib import Path

from waveidp.bench.outputs.csv_table import write_csv
from waveidp.bench.outputs.html_report import write_html
from waveidp.bench.outputs.plots import write_plots
from waveidp.bench.report import BenchReport


def write_all(report: BenchReport, out: Path, plots: bool = True) -> list[Path]:
    written = [report.save(out), write_csv(report, out)]
    if plots and report.runs:
        pngs = write_plots(report, out)
        written += [*pngs, write_html(report, pngs, out)]
    return written
