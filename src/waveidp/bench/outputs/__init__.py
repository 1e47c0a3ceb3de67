"""Presentation of a finished run: results.json (the source of truth), CSV, plots, HTML, console."""

from waveidp.bench.outputs.console import print_compare, print_summary
from waveidp.bench.outputs.csv_table import write_csv
from waveidp.bench.outputs.html_report import write_html
from waveidp.bench.outputs.plots import write_plots
from waveidp.bench.outputs.results_json import build_report
from waveidp.bench.outputs.write_all import write_all

__all__ = [
    "build_report",
    "print_compare",
    "print_summary",
    "write_all",
    "write_csv",
    "write_html",
    "write_plots",
]
