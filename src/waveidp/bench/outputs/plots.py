"""PNG plots (matplotlib, Agg): throughput vs latency, TTFT and ITL distributions (ECDF per load point)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from waveidp.bench.metrics import ITL, OUTPUT_THROUGHPUT, TTFT, RequestMetric
from waveidp.bench.report import BenchReport


def _ecdf(ax: Any, report: BenchReport, metric: RequestMetric) -> None:
    import numpy as np

    for run in report.runs:
        values = np.sort([v for r in run.requests if (v := r.value(metric)) is not None])
        if values.size:
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=run.label)
    ax.set_xlabel(f"{metric.label} ({metric.unit})")
    ax.set_ylabel("fraction of requests ≤ x")
    ax.set_title(f"{metric.label} distribution")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def write_plots(report: BenchReport, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in ((axes[0], ITL), (axes[1], TTFT)):
        for kind, marker in (("concurrency", "o"), ("rate", "^")):
            runs = [
                r for r in report.runs if r.load == kind and r.summary.distribution(metric).p50 is not None
            ]
            runs.sort(key=lambda r: (r.concurrency or 0) if kind == "concurrency" else (r.rate or 0.0))
            if not runs:
                continue
            xs = [r.summary.per_s(OUTPUT_THROUGHPUT) for r in runs]
            p50 = [r.summary.distribution(metric).p50 for r in runs]
            p90 = [r.summary.distribution(metric).p90 for r in runs]
            ax.plot(xs, p50, marker + "-", label=f"{kind} sweep, p50")
            ax.plot(xs, p90, marker + "--", alpha=0.6, label=f"{kind} sweep, p90")
            for x, y, r in zip(xs, p50, runs, strict=True):
                ax.annotate(r.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f"output throughput ({OUTPUT_THROUGHPUT.unit}, all requests)")
        ax.set_ylabel(f"{metric.label} ({metric.unit})")
        ax.set_title(f"Throughput vs {metric.label}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{report.target.model} @ {report.target.url}", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "throughput_latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    for metric, file in ((TTFT, "ttft_distribution.png"), (ITL, "itl_distribution.png")):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        _ecdf(ax, report, metric)
        fig.tight_layout()
        paths.append(out_dir / file)
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
