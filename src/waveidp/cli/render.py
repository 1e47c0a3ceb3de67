"""`wave render`: deployment files per node from the fleet file and its plan."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from waveidp.cli._app import app, console, print_json
from waveidp.cli.plan import ProfileChoice


class TargetChoice(StrEnum):
    compose = "compose"
    k8s = "k8s"


@app.command("render")
def render_command(
    fleet_file: Path = typer.Option(Path("wave.yaml"), "--fleet", "-f", help="fleet file (wave.yaml)"),
    out: Path = typer.Option(
        Path("deploy"), "--out", "-o", help="directory for the files (one folder per node)"
    ),
    target: TargetChoice = typer.Option(TargetChoice.compose, "--target", help="compose or k8s"),
    check: bool = typer.Option(False, "--check", help="write nothing; list files that differ (exit 1)"),
    profile: ProfileChoice = typer.Option(ProfileChoice.single_user, "--profile", help="plan profile"),
    goal: list[str] = typer.Option([], "--goal", "-g", help="extra plan goal, repeatable"),
    licence: list[str] = typer.Option([], "--licence", help="paid licence held, as a service id"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Render docker compose (or Kubernetes), NGINX, Prometheus, Grafana, .env and README files per node."""
    f, files, status = render_to(
        fleet_file, out, target, profile=profile, goals=goal, licences=licence, check=check
    )
    if check:
        drift = {p: s for p, s in status.items() if s != "same"}
        if json_out:
            print_json({"out": str(out), "drift": drift})
        elif drift:
            console.print(f"[red]{len(drift)} file(s) differ from what {fleet_file} renders:[/]")
            for path, s in drift.items():
                console.print(f"  {s:8} {out / path}", highlight=False)
        else:
            console.print(f"[green]no drift:[/] {len(files)} files in {out} match {fleet_file}")
        if drift:
            raise typer.Exit(1)
        return
    if json_out:
        print_json({"out": str(out), "files": status})
        return
    changed = sum(1 for s in status.values() if s != "same")
    console.print(
        f"[green]rendered[/] {len(files)} files into {out} ({changed} written, "
        f"{len(files) - changed} unchanged)"
    )
    for node in f.nodes:
        readme = out / node.name / "README.md"
        if readme.exists() and target is TargetChoice.compose:
            console.print(f"  {node.name}: {readme}", highlight=False)


def render_to(
    fleet_file: Path,
    out: Path,
    target: TargetChoice = TargetChoice.compose,
    *,
    profile: ProfileChoice = ProfileChoice.single_user,
    goals: list[str] | None = None,
    licences: list[str] | None = None,
    check: bool = False,
) -> tuple[Any, dict[str, str], dict[str, str]]:
    """Render the fleet file into `out` (unless `check`): the fleet, the files and each one's status
    before writing (same, changed, missing). `.env` secrets already in `out` are kept."""
    from waveidp import fleet
    from waveidp.cli.plan import measured_hardware
    from waveidp.plan import make_plan
    from waveidp.render import fill, parse_env, render, required_secrets

    f = fleet.load(fleet_file)
    plan = make_plan(
        f,
        profile=profile.value,
        goals=goals or [],
        licences=licences or [],
        measured_hardware=measured_hardware(),
    )
    existing: dict[str, str] = {}
    if out.is_dir():
        for env in sorted(out.rglob(".env")):
            existing.update({k: v for k, v in parse_env(env.read_text(encoding="utf-8")).items() if v})
    wanted = required_secrets(f, plan, target.value)
    values = {k: existing.get(k, "") for k in wanted} if check else fill(wanted, existing)
    files = render(f, plan, target.value, values)
    status = {path: _status(out / path, text) for path, text in files.items()}
    if not check:
        for path, text in files.items():
            if status[path] != "same":
                _write(out / path, text, secret=Path(path).name == ".env")
    return f, files, status


def _status(path: Path, text: str) -> str:
    if not path.exists():
        return "missing"
    return "same" if path.read_text(encoding="utf-8") == text else "changed"


def _write(path: Path, text: str, *, secret: bool) -> None:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600 if secret else 0o644)
    os.replace(tmp, path)
