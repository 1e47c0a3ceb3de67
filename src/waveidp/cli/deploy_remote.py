"""`wave deploy --on NODE/DEVICE` for a remote node: write the fleet file's backend and the node's
rendered files, print the commands to run (`waveidp.deploy.remote`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from waveidp.cli._app import console, print_json

if TYPE_CHECKING:
    from waveidp.deploy.planning import Placement
    from waveidp.models import ModelStore


def deploy_remote(
    placed: Placement,
    served: str,
    store: ModelStore,
    *,
    slots: int,
    context: int,
    out: Path,
    dry_run: bool,
    as_json: bool,
) -> None:
    from waveidp.cli.render import render_to
    from waveidp.deploy.remote import plan_remote
    from waveidp.fleet import write_atomic

    target = placed.target
    assert target.fleet_file is not None
    remote = plan_remote(
        placed, served, store.get(placed.revision.model), slots=slots, context=context, out=out
    )
    files: dict[str, str] = {}
    if not dry_run:
        write_atomic(target.fleet_file, remote.fleet_text)
        _, _, status = render_to(target.fleet_file, out)  # every node's files, as `wave render` writes them
        files = {str(out / p): s for p, s in status.items() if p.startswith(f"{remote.node.name}/")}
    b = remote.backend
    if as_json:
        print_json(
            {
                "name": served,
                "node": remote.node.name,
                "backend": b.model_dump(mode="json", exclude_defaults=True),
                "fleet_file": str(target.fleet_file),
                "files": files,
                "commands": [{"where": w, "command": c} for w, c in remote.commands],
                "dry_run": dry_run,
            }
        )
        return
    verb = "would add" if dry_run else "added"
    console.print(
        f"{verb} backend {b.name} ({b.url}, devices {', '.join(b.devices) or '-'}) to node "
        f"{remote.node.name} in {target.fleet_file}"
        + (
            ""
            if dry_run
            else f"; rendered the fleet into {out} ({out / remote.node.name}: {len(files)} files)"
        ),
        highlight=False,
        soft_wrap=True,
    )
    console.print("then run:", highlight=False)
    for where, command in remote.commands:
        console.print(f"  # {where}\n  {command}", highlight=False, soft_wrap=True)
