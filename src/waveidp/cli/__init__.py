"""`wave` command line: one module per verb group, each thin (parse, call the core, print).

Verb modules import their heavy dependencies inside the command functions so that
`wave --help` and `wave serve` start fast.
"""

from __future__ import annotations

import sys

from waveidp.cli import (  # noqa: F401  (importing registers the verbs)
    audit,
    bench,
    deploy,
    exporter,
    fleet,
    keys,
    models,
    plan,
    render,
    serve,
    size,
)
from waveidp.cli._app import app, err_console, shown
from waveidp.errors import WaveError


def main() -> None:
    try:
        app()
    except WaveError as exc:
        # the message may quote what someone typed or sent: shown, never read as markup
        err_console.print("[bold red]error:[/]", shown(exc), highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)


__all__ = ["app", "main"]
