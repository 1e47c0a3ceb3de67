"""`wave audit`: check the hash chain of the gateway's audit log, read and export it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from waveidp.cli._app import app, console, err_console, print_json, shown

audit_app = typer.Typer(
    help="The gateway's hash-chained audit log (WAVE_HOME/audit.db).", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")

DbOption = typer.Option(None, "--db", help="SQLite audit database (default WAVE_HOME/audit.db)")
DatabaseOption = typer.Option(
    None,
    "--database",
    envvar="WAVE_DATABASE_URL",
    show_envvar=True,
    help="PostgreSQL URL of the gateway replicas' shared audit log (instead of --db)",
)


def _table(db: Path | None, database: str | None) -> Any:
    from waveidp.security.state import audit_table

    return audit_table(database, db, readonly=True)


@audit_app.command("verify")
def verify(
    db: Path | None = DbOption,
    database: str | None = DatabaseOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check every row's hash and link; exit 1 naming the first edited, deleted or cut-off row."""
    from waveidp.security import audit

    verdict = audit.verify(_table(db, database))
    if as_json:
        print_json(verdict.to_dict())
    elif verdict.ok:
        console.print(
            f"[green]audit chain intact[/]: {verdict.rows} rows, head {verdict.head}", highlight=False
        )
    else:
        err_console.print(
            f"[bold red]audit chain broken at row {verdict.broken_row}[/]: {verdict.reason} "
            f"({verdict.rows} rows verified before it)",
            highlight=False,
            soft_wrap=True,
        )
    if not verdict.ok:
        raise typer.Exit(1)


def _fmt(row: dict[str, Any]) -> list[Text]:
    """One row's cells; what clients chose (principal: a JWT's subject; model; endpoint) is shown
    escaped, never as markup or terminal control sequences."""
    from datetime import datetime

    when = datetime.fromtimestamp(row["ts"]).astimezone().isoformat(timespec="seconds")
    latency = None if row["latency_s"] is None else f"{row['latency_s'] * 1000:.1f}"
    cells = (row["id"], when, row["principal"], row["endpoint"], row["model"], row["backend"], row["status"])
    return [shown(v) for v in (*cells, row["tokens_in"], row["tokens_out"], latency)]


@audit_app.command("tail")
def tail(
    n: int = typer.Option(20, "-n", "--lines", min=1, max=100_000, help="how many of the newest rows"),
    db: Path | None = DbOption,
    database: str | None = DatabaseOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the newest rows."""
    from rich.table import Table

    from waveidp.security import audit

    rows = list(audit.rows(_table(db, database), last=n))
    if as_json:
        print_json(rows)
        return
    t = Table(title=f"last {len(rows)} audit rows")
    for col in ("id", "time", "principal", "endpoint", "model", "backend", "status", "in", "out", "ms"):
        t.add_column(col)
    for row in rows:
        t.add_row(*_fmt(row))
    console.print(t)


@audit_app.command("export")
def export(
    fmt: str = typer.Option("jsonl", "--format", help="output format (jsonl)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="file to write (default stdout)"),
    db: Path | None = DbOption,
    database: str | None = DatabaseOption,
) -> None:
    """Write every row, hashes included, one JSON object per line."""
    import orjson

    from waveidp.errors import InputError
    from waveidp.paths import private_file
    from waveidp.security import audit

    if fmt != "jsonl":
        raise InputError(f"unknown export format '{fmt}'", fix="use --format jsonl")
    # rows name callers and, with --log-prompts, hold what they sent: private from the start
    out = open(private_file(output), "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        count = 0
        for row in audit.rows(_table(db, database)):
            out.write(orjson.dumps(row) + b"\n")
            count += 1
    finally:
        if output:
            out.close()
    if output:
        err_console.print(f"wrote {count} rows to {output}")
