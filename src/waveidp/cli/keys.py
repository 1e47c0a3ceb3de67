"""`wave keys`: create, list, revoke and rotate gateway API keys (stored hashed in WAVE_HOME/keys.db)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from waveidp.cli._app import app, console, err_console, print_json, shown

if TYPE_CHECKING:
    from waveidp.security.keys import ApiKey, IssuedKey, KeyStore

keys_app = typer.Typer(
    help="Gateway API keys: created once, stored only as salted hashes.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

DbOption = typer.Option(None, "--db", help="SQLite key database (default WAVE_HOME/keys.db)")
DatabaseOption = typer.Option(
    None,
    "--database",
    envvar="WAVE_DATABASE_URL",
    show_envvar=True,
    help="PostgreSQL URL of the gateway replicas' shared keys (instead of --db)",
)
JsonOption = typer.Option(False, "--json", help="print JSON for scripts")


def _store(db: Path | None, database: str | None) -> KeyStore:
    from waveidp.security.keys import KeyStore
    from waveidp.security.state import key_table

    return KeyStore(key_table(database, db))


def _table(keys: list[ApiKey], title: str) -> None:
    from rich.table import Table

    t = Table(title=title)
    for col in ("id", "name", "status", "models", "rpm", "tpm", "concurrent", "expires", "created"):
        t.add_column(col)
    for k in keys:
        d = k.to_dict()
        cells = (d["id"], d["name"], d["status"], " ".join(d["models"]), d["rpm"], d["tpm"])
        t.add_row(*map(shown, cells), shown(d["max_concurrent"]), d["expires_at"] or "never", d["created_at"])
    console.print(t)


def _show_issued(issued: IssuedKey, as_json: bool, verb: str) -> None:
    if as_json:
        print_json({**issued.record.to_dict(), "key": issued.key.reveal()})
        return
    _table([issued.record], f"{verb} key")
    console.print(f"key: [bold]{issued.key.reveal()}[/]", highlight=False, soft_wrap=True)
    err_console.print("[yellow]This is the only time the key is shown; store it now.[/]")


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="a name for the key (who or what uses it)"),
    model: list[str] = typer.Option(
        ["*"], "--model", "-m", help="model glob pattern it may use (repeatable)"
    ),
    expires: str | None = typer.Option(None, help="expiry: a duration (30d, 12h) or an ISO date"),
    rpm: int | None = typer.Option(None, help="requests per minute"),
    tpm: int | None = typer.Option(None, help="tokens (input + output) per minute"),
    max_concurrent: int | None = typer.Option(None, help="requests in flight at once"),
    db: Path | None = DbOption,
    database: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a key; it is printed once and never again."""
    from waveidp.security.keys import parse_expiry

    store = _store(db, database)
    issued = store.create(
        name,
        models=model,
        expires_at=parse_expiry(expires) if expires else None,
        rpm=rpm,
        tpm=tpm,
        max_concurrent=max_concurrent,
    )
    _show_issued(issued, as_json, "created")


@keys_app.command("list")
def list_keys(
    all_: bool = typer.Option(False, "--all", help="include revoked keys"),
    db: Path | None = DbOption,
    database: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """List keys (never their secrets)."""
    keys = _store(db, database).list(include_revoked=all_)
    if as_json:
        print_json([k.to_dict() for k in keys])
    else:
        _table(keys, f"{len(keys)} API keys")


@keys_app.command("revoke")
def revoke(
    name_or_id: str = typer.Argument(..., help="key name or id"),
    db: Path | None = DbOption,
    database: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Revoke a key; the gateway refuses it from its next request on."""
    key = _store(db, database).revoke(name_or_id)
    if as_json:
        print_json(key.to_dict())
    else:
        console.print("revoked key", shown(key.name), f"({key.id})", highlight=False)


@keys_app.command("rotate")
def rotate(
    name_or_id: str = typer.Argument(..., help="key name or id"),
    db: Path | None = DbOption,
    database: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Give a key a new secret (same name, models and limits); the old secret stops working."""
    _show_issued(_store(db, database).rotate(name_or_id), as_json, "rotated")
