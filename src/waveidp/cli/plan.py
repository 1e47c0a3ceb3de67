"""`wave plan`: MoSCoW priorities and placement of the service catalog for a fleet."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from waveidp.cli._app import app, console, print_json


class ProfileChoice(StrEnum):
    single_user = "single-user"
    team = "team"


class PlanFormat(StrEnum):
    table = "table"
    markdown = "markdown"
    html = "html"
    json = "json"


@app.command("plan")
def plan_command(
    fleet_file: Path = typer.Option(Path("wave.yaml"), "--fleet", "-f", help="fleet file (wave.yaml)"),
    profile: ProfileChoice = typer.Option(ProfileChoice.single_user, "--profile", help="who uses the fleet"),
    goal: list[str] = typer.Option(
        [], "--goal", "-g", help="extra goal, repeatable (rag, training, npu, ...)"
    ),
    licence: list[str] = typer.Option(
        [], "--licence", help="paid licence held, as a service id (ai-enterprise)"
    ),
    fmt: PlanFormat = typer.Option(PlanFormat.table, "--format", help="table, markdown, html or json"),
    json_out: bool = typer.Option(False, "--json", help="same as --format json"),
) -> None:
    """Decide Must/Should/Could/Won't for every catalog service, place it on a node and say why."""
    from waveidp import fleet
    from waveidp.plan import make_plan, to_html, to_markdown

    plan = make_plan(
        fleet.load(fleet_file),
        profile=profile.value,
        goals=goal,
        licences=licence,
        measured_hardware=measured_hardware(),
    )
    if json_out or fmt is PlanFormat.json:
        print_json(plan)
    elif fmt is PlanFormat.markdown:
        typer.echo(to_markdown(plan), nl=False)
    elif fmt is PlanFormat.html:
        typer.echo(to_html(plan), nl=False)
    else:
        _print_table(plan)


def measured_hardware() -> set[str]:
    """Hardware ids with factors from `wave calibrate` (real measurements) in the user's calibration file."""
    import yaml

    from waveidp.sizing import calibration_path

    path = calibration_path()
    if not path.exists():
        return set()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return set((data.get("devices") or {}).keys()) if isinstance(data, dict) else set()


def _print_table(plan: object) -> None:
    from rich.table import Table

    from waveidp.plan import PRIORITIES, Plan
    from waveidp.plan._report import TITLES

    assert isinstance(plan, Plan)
    styles = {"must": "bold green", "should": "cyan", "could": "yellow", "wont": "red"}
    table = Table(title=f"Wave plan: {plan.fleet} ({plan.profile}; goals: {', '.join(plan.goals)})")
    table.add_column("", no_wrap=True)
    table.add_column("service", no_wrap=True)
    table.add_column("node", no_wrap=True)
    table.add_column("reason (? = uncertainty)")
    for p in PRIORITIES:
        for d in getattr(plan, p):
            reason = d.reason + "".join(f"\n[yellow]? {u}[/]" for u in d.uncertainties)
            table.add_row(f"[{styles[p]}]{TITLES[p]}[/]", d.service, d.node or "-", reason)
    console.print(table)
    for u in plan.uncertainties:
        console.print(f"[yellow]?[/] {u}", highlight=False)
