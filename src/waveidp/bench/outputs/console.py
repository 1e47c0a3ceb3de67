"""Rich tables for the terminal: one run's summary, and two runs side by side."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from waveidp.bench.outputs.results_json import run_label


def _f(v: float | None, nd: int = 1) -> str:
    return "–" if v is None else f"{v:,.{nd}f}"


def print_summary(doc: dict[str, Any], console: Console) -> None:
    target = doc["target"]
    t = Table(
        title=f"wave bench: {target['model']} ({target['endpoint']}) at {target['url']}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    slo = bool(doc["config"].get("slo"))
    heads = ["load", "ok", "err", "TTFT50", "TTFT99", "ITL50", "ITL99", "tok/s", "lag99"]
    for col in heads + (["good/s"] if slo else []):
        t.add_column(col, justify="left" if col == "load" else "right", no_wrap=True)
    for run in doc["runs"]:
        s = run["summary"]
        cells = [
            run_label(run),
            str(s["completed"]),
            str(s["errors"]),
            _f(s["ttft_ms"]["p50"], 0),
            _f(s["ttft_ms"]["p99"], 0),
            _f(s["itl_ms"]["p50"]),
            _f(s["itl_ms"]["p99"]),
            _f(s["output_tokens_per_s"], 0),
            _f(s["client_lag_ms"]["p99"], 2),
        ]
        t.add_row(*cells, *([_f(s["goodput_per_s"], 2)] if slo else []))
    console.print(t)
    console.print(
        "[dim]ms; 50/99 = p50/p99; lag = client send lag; all figures in results.json; tokens from "
        f"{doc['runs'][0]['summary']['output_token_source'] if doc['runs'] else '–'}[/]"
    )
    for run in doc["runs"]:
        s = run["summary"]
        if s["errors"]:
            examples = "; ".join(f"{k}: {v}" for k, v in s["error_examples"].items())
            console.print(
                f"[yellow]{run_label(run)}: {s['errors']} errors {s['errors_by_kind']} — {examples}[/]"
            )
        tel = run["telemetry"]
        if tel.get("tokens_per_joule"):
            cost = tel.get("cost_per_million_tokens")
            console.print(
                f"{run_label(run)}: {tel['tokens_per_joule']:.3f} tokens/J, {tel['mean_power_w']:.0f} W"
                + (f", {cost:.4f} per 1M tokens" if cost is not None else "")
            )
    for p in doc.get("predictions") or []:
        console.print(
            f"{p['label']}: predicted TTFT {_f(p['ttft_ms']['predicted'])} ms "
            f"({_f(p['ttft_ms']['error_pct'])}% off), ITL {_f(p['itl_ms']['predicted'], 2)} ms "
            f"({_f(p['itl_ms']['error_pct'])}% off), {_f(p['output_tokens_per_s']['predicted'])} tok/s "
            f"({_f(p['output_tokens_per_s']['error_pct'])}% off)"
        )


_COMPARE = (
    ("TTFT p50 ms", ("ttft_ms", "p50")),
    ("TTFT p99 ms", ("ttft_ms", "p99")),
    ("ITL p50 ms", ("itl_ms", "p50")),
    ("ITL p99 ms", ("itl_ms", "p99")),
    ("E2E p50 ms", ("e2e_ms", "p50")),
    ("out tok/s", ("output_tokens_per_s",)),
    ("req/s", ("requests_per_s",)),
    ("goodput/s", ("goodput_per_s",)),
    ("errors", ("errors",)),
)


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> float | None:
    v: Any = summary
    for k in path:
        v = v.get(k) if isinstance(v, dict) else None
    return v if isinstance(v, int | float) else None


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs matched by load point; per metric the two values and B/A."""
    b_runs = {run_label(r): r for r in b["runs"]}
    rows = []
    for ra in a["runs"]:
        label = run_label(ra)
        rb = b_runs.get(label)
        if rb is None:
            continue
        for name, path in _COMPARE:
            va, vb = _get(ra["summary"], path), _get(rb["summary"], path)
            ratio = vb / va if va and vb is not None else None
            rows.append({"load": label, "metric": name, "a": va, "b": vb, "ratio": ratio})
    return rows


def print_compare(a: dict[str, Any], b: dict[str, Any], console: Console) -> list[dict[str, Any]]:
    rows = compare_rows(a, b)
    console.print(f"A = {a['_path']}\nB = {b['_path']}", highlight=False, soft_wrap=True)
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
