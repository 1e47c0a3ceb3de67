"""PNG plots (matplotlib, Agg): throughput vs latency, TTFT and ITL distributions (ECDF per load point)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from waveidp.bench.outputs.results_json import run_label


def _ecdf(ax: Any, doc: dict[str, Any], key: str, title: str) -> None:
    import numpy as np

    for run in doc["runs"]:
        values = np.sort([r[key] for r in run["requests"] if r.get(key) is not None])
        if values.size:
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=run_label(run))
    ax.set_xlabel(f"{title} (ms)")
    ax.set_ylabel("fraction of requests ≤ x")
    ax.set_title(f"{title} distribution")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def write_plots(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, name in ((axes[0], "itl_ms", "ITL"), (axes[1], "ttft_ms", "TTFT")):
        for kind, marker in (("concurrency", "o"), ("rate", "^")):
            runs = [r for r in doc["runs"] if r["load"] == kind and r["summary"][key]["p50"] is not None]
            runs.sort(key=lambda r: r[kind])
            if not runs:
                continue
            xs = [r["summary"]["output_tokens_per_s"] for r in runs]
            ax.plot(xs, [r["summary"][key]["p50"] for r in runs], marker + "-", label=f"{kind} sweep, p50")
            ax.plot(
                xs,
                [r["summary"][key]["p90"] for r in runs],
                marker + "--",
                alpha=0.6,
                label=f"{kind} sweep, p90",
            )
            for x, r in zip(xs, runs, strict=True):
                ax.annotate(
                    run_label(r),
                    (x, r["summary"][key]["p50"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=8,
                )
        ax.set_xlabel("output throughput (tokens/s, all requests)")
        ax.set_ylabel(f"{name} (ms)")
        ax.set_title(f"Throughput vs {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{doc['target']['model']} @ {doc['target']['url']}", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "throughput_latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    for key, name, file in (
        ("ttft_ms", "TTFT", "ttft_distribution.png"),
        ("itl_ms", "ITL", "itl_distribution.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        _ecdf(ax, doc, key, name)
        fig.tight_layout()
        paths.append(out_dir / file)
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
