"""PostgreSQL tables, for several gateway replicas (processes or hosts) sharing keys and one audit chain.

- **Keys**: `wave_api_keys`. A trigger sends `NOTIFY wave_keys` on every change; a listener thread
  (one connection per process, `LISTEN`) rereads the table when one arrives, or when it
  reconnects after an outage, and then moves `version()`. The request path reads that snapshot
  and never waits on the database, except for a key id it has not seen yet (one created a moment
  ago on another replica): `fetch`, on psycopg's async driver through a small pool.
- **Audit**: `wave_audit` plus a one-row `wave_audit_head` (last id, last hash). Each append is one
  transaction that locks the head row (`SELECT ... FOR UPDATE`): the writers of every replica take
  turns, ids are consecutive because they are assigned under that lock (a sequence's rolled-back
  values would leave gaps that read as deleted rows), and the head also shows rows cut off the end.

Connections use short timeouts (connect 3 s, TCP user timeout 5 s, keepalives) so that a database
that vanished is noticed in seconds, not at the kernel's TCP timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from waveidp.security.state._chain import FIELDS, GENESIS, identity, link
from waveidp.security.state._interface import (
    KEY_COLUMNS,
    AuditFilter,
    AuditQueries,
    DuplicateName,
    KeyRow,
    StoreUnavailable,
    UsageBucket,
    usage_buckets,
    usage_totals,
)

log = logging.getLogger("waveidp.security.state")

CHANNEL = "wave_keys"
_SCHEMA_LOCK = 0x57415645  # pg_advisory_xact_lock key: one replica creates the schema at a time
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS wave_api_keys (
  id text PRIMARY KEY,
  name text NOT NULL,
  salt bytea NOT NULL,
  digest bytea NOT NULL,
  models text NOT NULL,
  rpm bigint, tpm bigint, max_concurrent bigint,
  expires_at double precision,
  created_at double precision NOT NULL,
  rotated_at double precision,
  revoked_at double precision
);
CREATE UNIQUE INDEX IF NOT EXISTS wave_api_keys_active_name ON wave_api_keys(name) WHERE revoked_at IS NULL;
CREATE OR REPLACE FUNCTION wave_keys_notify() RETURNS trigger AS $$
BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$ LANGUAGE plpgsql;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'wave_api_keys_changed') THEN
    CREATE TRIGGER wave_api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON wave_api_keys
      FOR EACH STATEMENT EXECUTE FUNCTION wave_keys_notify();
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS wave_audit (
  id bigint PRIMARY KEY,
  ts double precision NOT NULL,
  request_id text,
  principal text NOT NULL,
  endpoint text,
  model text,
  backend text,
  status integer NOT NULL,
  tokens_in bigint,
  tokens_out bigint,
  latency_s double precision,
  prompt text,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX IF NOT EXISTS wave_audit_ts ON wave_audit(ts);
CREATE TABLE IF NOT EXISTS wave_audit_head (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  last_id bigint NOT NULL,
  last_hash text NOT NULL
);
INSERT INTO wave_audit_head VALUES (true, 0, '{GENESIS}') ON CONFLICT DO NOTHING;
"""
_CONNECT: dict[str, Any] = {
    "connect_timeout": 3,
    "tcp_user_timeout": 5000,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "application_name": "wave",
}


def describe(url: str) -> str:
    """postgresql://user@host:port/db, never the password."""
    try:
        d = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable URL)"
    user = f"{d['user']}@" if d.get("user") else ""
    return f"postgresql://{user}{d.get('host', 'localhost')}:{d.get('port', 5432)}/{d.get('dbname', '')}"


def unavailable(where: str, exc: BaseException) -> StoreUnavailable:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(
        f"PostgreSQL at {where} is unavailable: {first}",
        fix="check that the server runs and WAVE_DATABASE_URL points at it",
    )


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(url, **_CONNECT, **kwargs)


def prepare(url: str) -> None:
    """Create the tables, the trigger and the chain head (idempotent; one replica at a time)."""
    try:
        with connect(url) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute(_SCHEMA)
    except psycopg.Error as exc:
        raise unavailable(describe(url), exc) from None


class _Connection:
    """One lazily (re)opened connection, used under a lock by one thread at a time."""

    def __init__(self, url: str, where: str) -> None:
        self.url = url
        self.where = where
        self.lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    def get(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url)
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self.lock:
            self.drop()


class PostgresKeyTable:
    shared = True

    def __init__(self, url: str) -> None:
        self.where = describe(url)
        self._url = url
        self._conn = _Connection(url, self.where)
        self._version = 0
        self._snapshot: list[KeyRow] | None = None
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()
        self._pool: Any = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self.listening = False  # the listener holds a live connection (a test and /ready read it)

    # --- the snapshot the request path reads ------------------------------------------------------

    def watch(self) -> None:
        """Start the listener thread: from now on `version()` and `rows()` answer from memory."""
        if self._listener is None:
            self._listener = threading.Thread(target=self._listen, name="wave-keys-listener", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        backoff = 0.2
        while not self._closed.is_set():
            try:
                with connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._reload(conn)  # whatever changed while nobody listened
                    self.listening, backoff = True, 0.2
                    while not self._closed.is_set():
                        changed = False
                        for _ in conn.notifies(timeout=0.5):
                            changed = True
                            break
                        if changed:
                            for _ in conn.notifies(timeout=0.0):  # one reread for a burst of changes
                                pass
                            self._reload(conn)
            except psycopg.Error as exc:
                if self.listening:
                    log.warning("key table listener lost %s: %s; cached keys stay in use", self.where, exc)
            self.listening = False
            self._closed.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _reload(self, conn: psycopg.Connection[Any]) -> None:
        found = conn.execute(f"SELECT {', '.join(KEY_COLUMNS)} FROM wave_api_keys").fetchall()
        self._snapshot = [_key_row(r) for r in found]
        self._version += 1

    def version(self) -> int:
        if self._listener is None:
            self._version += 1  # not watching (the CLI): every read goes to the database
        return self._version

    def rows(self) -> list[KeyRow]:
        snapshot = self._snapshot
        if self._listener is not None and snapshot is not None:
            return snapshot
        found = self._run(
            lambda c: c.execute(f"SELECT {', '.join(KEY_COLUMNS)} FROM wave_api_keys").fetchall()
        )
        return [_key_row(r) for r in found]

    async def fetch(self, key_id: str) -> KeyRow | None:
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool_loop is not loop:  # a pool belongs to one event loop
            self._pool = AsyncConnectionPool(
                self._url, min_size=1, max_size=4, timeout=2.0, kwargs=dict(_CONNECT), open=False
            )
            self._pool_loop = loop
            await self._pool.open(wait=False)
        query = f"SELECT {', '.join(KEY_COLUMNS)} FROM wave_api_keys WHERE id = %s"
        try:
            async with asyncio.timeout(3.0), self._pool.connection() as conn:
                cur = await conn.execute(query, (key_id,))
                r = await cur.fetchone()
        except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
            raise unavailable(self.where, exc) from None
        return _key_row(r) if r else None

    # --- writes (the CLI, the admin API: off the request path) -----------------------------------

    def insert(self, row: KeyRow) -> None:
        values = tuple(getattr(row, c) for c in KEY_COLUMNS)
        query = (
            f"INSERT INTO wave_api_keys ({', '.join(KEY_COLUMNS)}) VALUES ({', '.join(['%s'] * len(values))})"
        )
        try:
            self._run(lambda c: c.execute(query, values), write=True)
        except psycopg.errors.UniqueViolation:
            raise DuplicateName(row.name) from None

    def update(self, key_id: str, fields: dict[str, Any]) -> None:
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in fields)
        query = sql.SQL("UPDATE wave_api_keys SET {} WHERE id = %s").format(sets)
        self._run(lambda c: c.execute(query, (*fields.values(), key_id)), write=True)

    def _run(self, call: Any, *, write: bool = False) -> Any:
        with self._conn.lock:
            try:
                conn = self._conn.get()
                with conn.transaction():
                    result = call(conn)
                if write:  # read this process's own write back at once, not after the notification
                    self._snapshot = None
                    self._version += 1
                return result
            except psycopg.errors.UniqueViolation:
                raise
            except psycopg.Error as exc:
                self._conn.drop()
                raise unavailable(self.where, exc) from None

    async def aclose(self) -> None:
        if self._pool is not None and self._pool_loop is asyncio.get_running_loop():
            pool, self._pool = self._pool, None
            await pool.close(timeout=2.0)

    def close(self) -> None:
        self._closed.set()
        self._conn.close()


def _key_row(r: Sequence[Any]) -> KeyRow:
    values = list(r)
    values[2], values[3] = bytes(values[2]), bytes(values[3])
    return KeyRow(*values)


_QUERIES = AuditQueries("wave_audit", "%s", "FLOOR({})::bigint")


class PostgresAuditTable:
    shared = True

    def __init__(self, url: str) -> None:
        self.where = describe(url)
        self._conn = _Connection(url, self.where)

    def append(self, entries: Sequence[dict[str, Any]]) -> None:
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("id", *FIELDS, "prev_hash", "hash"))
        copy = sql.SQL("COPY wave_audit ({}) FROM STDIN").format(columns)
        with self._conn.lock:
            try:
                conn = self._conn.get()
                with conn.transaction():
                    top, prev = conn.execute(
                        "SELECT last_id, last_hash FROM wave_audit_head WHERE one FOR UPDATE"
                    ).fetchone() or (0, GENESIS)
                    rows, top, prev = link(top, prev, entries)
                    with conn.cursor().copy(copy) as cp:
                        for row in rows:
                            cp.write_row(row)
                    conn.execute("UPDATE wave_audit_head SET last_id = %s, last_hash = %s", (top, prev))
            except psycopg.Error as exc:
                self._conn.drop()
                raise unavailable(self.where, exc) from None

    def present(self, entries: Sequence[dict[str, Any]]) -> set[tuple[Any, ...]]:
        if not entries:
            return set()
        low, high = min(e["ts"] for e in entries), max(e["ts"] for e in entries)
        with self._conn.lock:
            try:
                found = (
                    self._conn.get()
                    .execute(
                        "SELECT ts, principal, request_id, status FROM wave_audit WHERE ts BETWEEN %s AND %s",
                        (low, high),
                    )
                    .fetchall()
                )
                self._conn.get().rollback()
            except psycopg.Error as exc:
                self._conn.drop()
                raise unavailable(self.where, exc) from None
        return {identity(e) for e in entries} & {tuple(r) for r in found}

    def rows(self, *, after: int = 0, last: int | None = None) -> Iterator[dict[str, Any]]:
        try:
            conn = connect(self._conn.url, row_factory=dict_row)
        except psycopg.Error as exc:
            raise unavailable(self.where, exc) from None
        with conn, conn.transaction(), conn.cursor(name="wave_audit_rows") as cur:
            cur.itersize = 2000
            if last is not None:
                cur.execute(
                    "SELECT * FROM (SELECT * FROM wave_audit ORDER BY id DESC LIMIT %s) t ORDER BY id",
                    (last,),
                )
            else:
                cur.execute("SELECT * FROM wave_audit WHERE id > %s ORDER BY id", (after,))
            yield from cur

    def _read(self, query: str, args: Sequence[Any], row_factory: Any = None) -> list[Any]:
        with self._conn.lock:
            try:
                conn = self._conn.get()
                with conn.cursor(row_factory=row_factory) if row_factory else conn.cursor() as cur:
                    found = cur.execute(query, args).fetchall()
                conn.rollback()
            except psycopg.Error as exc:
                self._conn.drop()
                raise unavailable(self.where, exc) from None
        return found

    def page(self, where: AuditFilter, *, before: int | None, limit: int) -> list[dict[str, Any]]:
        return self._read(*_QUERIES.page(where, before, limit), row_factory=dict_row)

    def usage(self, *, since: float, bucket_s: float, principal: str | None = None) -> list[UsageBucket]:
        return usage_buckets(self._read(*_QUERIES.usage(since, bucket_s, principal)), since, bucket_s)

    def totals(self, *, since: float) -> dict[str, UsageBucket]:
        return usage_totals(self._read(*_QUERIES.totals(since)), since)

    def assigned(self) -> int:
        with self._conn.lock:
            try:
                conn = self._conn.get()
                with conn.transaction():
                    head = conn.execute("SELECT last_id FROM wave_audit_head").fetchone()
            except psycopg.Error as exc:
                self._conn.drop()
                raise unavailable(self.where, exc) from None
        return int(head[0]) if head else 0

    def close(self) -> None:
        self._conn.close()
