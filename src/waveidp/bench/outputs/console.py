"""Rich tables for the terminal: one run's summary, and two runs side by side."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from waveidp.bench.metrics import (
    CLIENT_LAG,
    E2E,
    GOODPUT,
    ITL,
    OUTPUT_THROUGHPUT,
    REQUEST_THROUGHPUT,
    TTFT,
    Metric,
)
from waveidp.bench.report import BenchReport, LoadPointSummary


def _f(v: float | None, nd: int = 1) -> str:
    return "–" if v is None else f"{v:,.{nd}f}"


def print_summary(report: BenchReport, console: Console) -> None:
    target = report.target
    t = Table(
        title=f"wave bench: {target.model} ({target.endpoint}) at {target.url}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    slo = bool(report.config.slo)
    heads = [
        "load", "ok", "err", f"{TTFT.label}50", f"{TTFT.label}99", f"{ITL.label}50", f"{ITL.label}99",
        "tok/s", "lag99",
    ]  # fmt: skip
    for col in heads + (["good/s"] if slo else []):
        t.add_column(col, justify="left" if col == "load" else "right", no_wrap=True)
    for run in report.runs:
        s = run.summary
        cells = [
            run.label,
            str(s.completed),
            str(s.errors),
            _f(s.ttft_ms.p50, 0),
            _f(s.ttft_ms.p99, 0),
            _f(s.itl_ms.p50),
            _f(s.itl_ms.p99),
            _f(s.output_tokens_per_s, 0),
            _f(s.client_lag_ms.p99, 2),
        ]
        t.add_row(*cells, *([_f(s.goodput_per_s, 2)] if slo else []))
    console.print(t)
    console.print(
        f"[dim]{TTFT.unit}; 50/99 = p50/p99; lag = {CLIENT_LAG.label}; all figures in results.json; "
        f"tokens from {report.runs[0].summary.output_token_source if report.runs else '–'}[/]"
    )
    for run in report.runs:
        s = run.summary
        if s.errors:
            examples = "; ".join(f"{k}: {v}" for k, v in s.error_examples.items())
            console.print(f"[yellow]{run.label}: {s.errors} errors {s.errors_by_kind} — {examples}[/]")
        tel = run.telemetry
        if tel.tokens_per_joule:
            cost = tel.cost_per_million_tokens
            console.print(
                f"{run.label}: {tel.tokens_per_joule:.3f} tokens/J, {tel.mean_power_w or 0:.0f} W"
                + (f", {cost:.4f} per 1M tokens" if cost is not None else "")
            )
    for p in report.predictions or []:
        console.print(
            f"{p.label}: predicted {TTFT.label} {_f(p.ttft_ms.predicted)} {TTFT.unit} "
            f"({_f(p.ttft_ms.error_pct)}% off), {ITL.label} {_f(p.itl_ms.predicted, 2)} {ITL.unit} "
            f"({_f(p.itl_ms.error_pct)}% off), {_f(p.output_tokens_per_s.predicted)} "
            f"{OUTPUT_THROUGHPUT.unit} ({_f(p.output_tokens_per_s.error_pct)}% off)"
        )


# (metric, statistic of its distribution or None for a per-second figure)
_COMPARE: tuple[tuple[Metric, str | None], ...] = (
    (TTFT, "p50"),
    (TTFT, "p99"),
    (ITL, "p50"),
    (ITL, "p99"),
    (E2E, "p50"),
    (OUTPUT_THROUGHPUT, None),
    (REQUEST_THROUGHPUT, None),
    (GOODPUT, None),
)


def _compared(summary: LoadPointSummary) -> list[tuple[str, float | None]]:
    rows: list[tuple[str, float | None]] = []
    for metric, stat in _COMPARE:
        if stat is None:
            rows.append((metric.label, summary.per_s(metric)))
        else:
            rows.append((f"{metric.label} {stat} {metric.unit}", getattr(summary.distribution(metric), stat)))
    rows.append(("errors", summary.errors))
    return rows


def compare_rows(a: BenchReport, b: BenchReport) -> list[dict[str, Any]]:
    """Runs matched by load point; per metric the two values and B/A."""
    b_runs = {r.label: r for r in b.runs}
    rows = []
    for ra in a.runs:
        rb = b_runs.get(ra.label)
        if rb is None:
            continue
        for (name, va), (_, vb) in zip(_compared(ra.summary), _compared(rb.summary), strict=True):
            ratio = vb / va if va and vb is not None else None
            rows.append({"load": ra.label, "metric": name, "a": va, "b": vb, "ratio": ratio})
    return rows


def print_compare(a: BenchReport, b: BenchReport, console: Console) -> list[dict[str, Any]]:
    rows = compare_rows(a, b)
    console.print(f"A = {a.where}\nB = {b.where}", highlight=False, soft_wrap=True)
    t = Table(box=box.SIMPLE_HEAD)
    for col in ("load", "metric", "A", "B", "B/A"):
        t.add_column(col, justify="left" if col in ("load", "metric") else "right")
    last = None
    for r in rows:
        t.add_row(
            r["load"] if r["load"] != last else "",
            r["metric"],
            _f(r["a"], 2),
            _f(r["b"], 2),
            "–" if r["ratio"] is None else f"{r['ratio']:.3f}",
        )
        last = r["load"]
    console.print(t)
    if not rows:
        console.print("[yellow]the two results share no load point (concurrency or rate)[/]")
    return rows
