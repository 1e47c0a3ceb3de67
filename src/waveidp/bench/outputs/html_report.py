"""A self-contained HTML report: summary tables and the plots embedded as base64 PNGs."""

from __future__ import annotations

import base64
from pathlib import Path

from waveidp.bench import metrics
from waveidp.bench.report import BenchReport


def write_html(report: BenchReport, plots: list[Path], out_dir: Path) -> Path:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("waveidp.bench.outputs", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = lambda v, nd=2: "–" if v is None else f"{v:,.{nd}f}"
    images = [(p.stem.replace("_", " "), base64.b64encode(p.read_bytes()).decode()) for p in plots]
    html = env.get_template("report.html.j2").render(
        doc=report, images=images, runs=[(r.label, r) for r in report.runs], m=metrics
    )
    path = out_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return path
