"""Plan presentations: Markdown and HTML (the terminal table lives in the CLI)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from waveidp.plan._models import PRIORITIES, Plan

TITLES = {"must": "Must", "should": "Should", "could": "Could", "wont": "Won't"}
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html", "html.j2"]),
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(plan: Plan) -> str:
    lines = [
        f"# Wave plan for `{plan.fleet}` ({plan.profile})",
        "",
        f"Goals: {', '.join(plan.goals)}. Licences held: {', '.join(plan.licences) or 'none'}.",
        "",
    ]
    for p in PRIORITIES:
        rows = getattr(plan, p)
        lines += [f"## {TITLES[p]} ({len(rows)})", ""]
        if not rows:
            lines += ["(none)", ""]
            continue
        lines += ["| service | node | reason | seeds said | uncertainties |", "|---|---|---|---|---|"]
        for d in rows:
            seed = _cell(d.seed)
            unc = "; ".join(d.uncertainties) or "-"
            lines.append(f"| {_cell(d.name)} | {d.node or '-'} | {_cell(d.reason)} | {seed} | {_cell(unc)} |")
        lines.append("")
    lines += ["## Uncertainties", ""]
    lines += [f"- {u}" for u in plan.uncertainties] or ["(none)"]
    return "\n".join(lines) + "\n"


def to_html(plan: Plan) -> str:
    return _ENV.get_template("plan.html.j2").render(plan=plan, priorities=PRIORITIES, titles=TITLES)
