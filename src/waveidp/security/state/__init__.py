"""Where the gateway's shared state lives: API keys and the audit log (with the usage it records).

    keys = key_table(None)                                   # SQLite, WAVE_HOME/keys.db
    keys = key_table("postgresql://wave@db:5432/wave")       # PostgreSQL, shared by replicas
    audit = audit_table(database_url, readonly=True)         # `wave audit verify` on either

SQLite is the embedded default for one machine (one or several gateway processes); PostgreSQL
is for several replicas or hosts (`WAVE_DATABASE_URL`, `--database`). `KeyStore` and `AuditLog`
(waveidp.security.keys, .audit) take either table and never know which; limits live in Redis
(waveidp.security.limits), not here.
"""

from __future__ import annotations

from pathlib import Path

from waveidp.security.state._chain import FIELDS, GENESIS, identity, link, row_hash
from waveidp.security.state._interface import (
    AuditFilter,
    AuditTable,
    DuplicateName,
    KeyRow,
    KeyTable,
    StoreUnavailable,
    UsageBucket,
)

__all__ = [
    "FIELDS",
    "GENESIS",
    "AuditFilter",
    "AuditTable",
    "DuplicateName",
    "KeyRow",
    "KeyTable",
    "StoreUnavailable",
    "UsageBucket",
    "audit_table",
    "identity",
    "is_postgres",
    "key_table",
    "link",
    "prepare",
    "row_hash",
]


def is_postgres(database_url: str | None) -> bool:
    return bool(database_url) and str(database_url).startswith(("postgresql://", "postgres://"))


def _check(database_url: str | None) -> None:
    if database_url and not is_postgres(database_url):
        from waveidp.errors import ConfigError

        raise ConfigError(
            f"database URL '{database_url.split('://')[0]}://...' is not PostgreSQL",
            fix="use postgresql://user:password@host:5432/db, or leave it unset for SQLite in WAVE_HOME",
        )


def key_table(database_url: str | None, path: Path | None = None) -> KeyTable:
    """PostgreSQL at `database_url`, else the SQLite file `path` (default WAVE_HOME/keys.db)."""
    _check(database_url)
    if database_url:
        from waveidp.security.state._postgres import PostgresKeyTable, prepare

        prepare(database_url)
        return PostgresKeyTable(database_url)
    from waveidp.paths import wave_home
    from waveidp.security.state._sqlite import SqliteKeyTable

    return SqliteKeyTable(path or wave_home() / "keys.db")


def audit_table(database_url: str | None, path: Path | None = None, *, readonly: bool = False) -> AuditTable:
    """PostgreSQL at `database_url`, else the SQLite file `path` (default WAVE_HOME/audit.db)."""
    _check(database_url)
    if database_url:
        from waveidp.security.state._postgres import PostgresAuditTable, prepare

        if not readonly:
            prepare(database_url)
        return PostgresAuditTable(database_url)
    from waveidp.paths import wave_home
    from waveidp.security.state._sqlite import SqliteAuditTable

    return SqliteAuditTable(path or wave_home() / "audit.db", readonly=readonly)


def prepare(
    database_url: str | None, *, keys_path: Path | None = None, audit_path: Path | None = None
) -> None:
    """Create the tables once, before several processes open them at the same moment."""
    _check(database_url)
    if database_url:
        from waveidp.security.state._postgres import prepare as prepare_postgres

        prepare_postgres(database_url)
        return
    from waveidp.paths import wave_home
    from waveidp.security.state._sqlite import SqliteKeyTable, prepare_audit

    SqliteKeyTable(keys_path or wave_home() / "keys.db").close()
    prepare_audit(audit_path or wave_home() / "audit.db")
