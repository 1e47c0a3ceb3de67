"""Keys and the audit chain in a real PostgreSQL server shared by several gateway processes, and
what each does while the server is down (docs/security.md, Shared state)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from state_support import Postgres, postgres_server
from waveidp.errors import ApiError
from waveidp.loopback import free_port
from waveidp.security import audit
from waveidp.security.audit import AuditEntry, AuditLog
from waveidp.security.audit_spool import Spool
from waveidp.security.keys import KeyStore
from waveidp.security.state import StoreUnavailable, audit_table, key_table


def replica(url: str) -> KeyStore:
    """A gateway process's view of the shared keys (watching, as `build_security` sets it up)."""
    store = KeyStore(key_table(url))
    store.table.watch()
    return store


@pytest.fixture
def loop() -> Iterator[asyncio.Runner]:
    """One event loop per test, as a gateway process has (the async pool belongs to it)."""
    with asyncio.Runner() as runner:
        yield runner


def wait_for(condition, timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.005)
    return time.monotonic() - start


def refused(loop: asyncio.Runner, store: KeyStore, key: str) -> bool:
    try:
        loop.run(store.authenticate_async(key))
        return False
    except ApiError:
        return True


def test_a_key_created_on_one_replica_works_on_the_other_at_once_and_a_revocation_follows(
    database_url: str, loop: asyncio.Runner
) -> None:
    a, b = replica(database_url), replica(database_url)
    try:
        wait_for(lambda: a.table.listening and b.table.listening)  # type: ignore[attr-defined]
        issued = a.create("alice", models=["smol*"], rpm=10)
        key = issued.key.reveal()
        # no wait: replica b has never seen this id, so it asks the table on the request path
        record = loop.run(b.authenticate_async(key))
        assert record.name == "alice" and record.limits.rpm == 10 and record.models == ("smol*",)
        a.revoke("alice")
        took = wait_for(lambda: refused(loop, b, key), timeout=2.0)
        assert took < 1.0  # a notification away, not a poll interval
        with pytest.raises(ApiError) as err:
            loop.run(b.authenticate_async(key))
        assert err.value.code == "api_key_revoked"
        assert [k.name for k in b.list(include_revoked=True)] == ["alice"]
    finally:
        for store in (a, b):
            loop.run(store.aclose())
            store.close()


def test_one_chain_with_several_writers_on_several_connections(database_url: str, tmp_path: Path) -> None:
    logs = [AuditLog(audit_table(database_url), spool_dir=tmp_path / f"spool{i}") for i in range(4)]
    per_writer = 300

    def write(i: int, log: AuditLog) -> None:
        for n in range(per_writer):
            log.record(AuditEntry(principal=f"w{i}", status=200, request_id=f"{i}-{n}", tokens_in=n))
            if n % 50 == 0:
                time.sleep(0.01)  # batches from all writers interleave

    threads = [threading.Thread(target=write, args=(i, log)) for i, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        assert log.flush()
        log.close()
    verdict = audit.verify(audit_table(database_url, readonly=True))
    assert verdict.ok and verdict.rows == 4 * per_writer
    ids = {r["request_id"] for r in audit.rows(audit_table(database_url, readonly=True))}
    assert len(ids) == 4 * per_writer
    out = subprocess.run(
        [sys.executable, "-m", "waveidp", "audit", "verify", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "WAVE_DATABASE_URL": database_url},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f'"rows": {4 * per_writer}' in out.stdout or f'"rows":{4 * per_writer}' in out.stdout


def test_tampering_in_postgres_is_caught_naming_the_row(database_url: str, tmp_path: Path) -> None:
    log = AuditLog(audit_table(database_url), spool_dir=tmp_path / "spool")
    for n in range(10):
        log.record(AuditEntry(principal="p", status=200, request_id=str(n)))
    assert log.flush()
    log.close()
    table = audit_table(database_url, readonly=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE wave_audit SET status = 500 WHERE id = 4")
        v = audit.verify(table)
        assert not v.ok and v.broken_row == 4 and "edited" in (v.reason or "")
        conn.execute("UPDATE wave_audit SET status = 200 WHERE id = 4")
        conn.execute("DELETE FROM wave_audit WHERE id >= 9")
        v = audit.verify(table)
        assert not v.ok and v.broken_row == 9 and "rows 9-10 deleted from the end" in (v.reason or "")
        conn.execute("DELETE FROM wave_audit WHERE id = 5")
        v = audit.verify(table)
        assert not v.ok and v.broken_row == 5 and "row 5 deleted" in (v.reason or "")


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    """A server of this test's own, to stop and start again."""
    with postgres_server("127.0.0.1", free_port()) as server:
        yield server


def test_postgres_down_cached_keys_go_on_new_keys_fail_clearly_audit_rows_spool_and_flush_in_order(
    own_postgres: Postgres, tmp_path: Path, loop: asyncio.Runner
) -> None:
    url = own_postgres.url
    store = replica(url)
    log = AuditLog(audit_table(url), spool_dir=tmp_path / "spool")
    try:
        known = store.create("known").key.reveal()
        loop.run(store.authenticate_async(known))  # its verdict is cached now
        other = "wave-sk-" + "ab" * 6 + "_" + "x" * 43  # an id this replica has not seen
        for n in range(5):
            log.record(AuditEntry(principal="known", status=200, request_id=f"before-{n}"))
        assert log.flush()

        own_postgres.stop()
        assert loop.run(store.authenticate_async(known)).name == "known"
        with pytest.raises(ApiError) as err:
            loop.run(store.authenticate_async(other))
        assert err.value.status == 503 and err.value.code == "key_store_unavailable"
        with pytest.raises(StoreUnavailable) as down:
            store.create("new")
        assert "PostgreSQL at postgresql://wave@127.0.0.1" in str(down.value)
        assert own_postgres.password not in str(down.value)
        for n in range(40):
            log.record(AuditEntry(principal="known", status=200, request_id=f"during-{n}"))
        assert log.flush()
        assert log.spooled == 40 and not log.available
        assert (tmp_path / "spool").exists() and any((tmp_path / "spool").iterdir())

        own_postgres.start()
        for n in range(3):
            log.record(AuditEntry(principal="known", status=200, request_id=f"after-{n}"))
        wait_for(lambda: log.spooled == 0 and log.available, timeout=15)
        assert log.flush()
        found = [r["request_id"] for r in audit.rows(audit_table(url, readonly=True))]
        expected = [f"before-{n}" for n in range(5)] + [f"during-{n}" for n in range(40)]
        assert found == expected + [f"after-{n}" for n in range(3)]
        assert audit.verify(audit_table(url, readonly=True)).ok
        # and keys work again: the listener reconnected and reread the table
        assert store.create("new").record.name == "new"
    finally:
        log.close()
        loop.run(store.aclose())
        store.close()


def test_a_spool_left_by_a_crashed_writer_is_adopted_without_writing_a_row_twice(
    database_url: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    entries = [
        {
            "ts": 1000.0 + n,
            "request_id": f"r{n}",
            "principal": "p",
            "endpoint": None,
            "model": None,
            "backend": None,
            "status": 200,
            "tokens_in": None,
            "tokens_out": None,
            "latency_s": None,
            "prompt": None,
        }
        for n in range(6)
    ]
    table = audit_table(database_url)
    table.append(entries[:2])  # the writer got these two into the table, then died before emptying its file
    crashed = Spool(spool_dir)
    crashed.add(entries)
    os.close(crashed._fd)  # the process is gone: its lock with it
    log = AuditLog(audit_table(database_url), spool_dir=spool_dir)
    wait_for(lambda: log.spooled == 0, timeout=10)
    log.close()
    found = [r["request_id"] for r in audit.rows(audit_table(database_url, readonly=True))]
    assert found == [f"r{n}" for n in range(6)]
    assert not list(spool_dir.glob("spool-*.jsonl"))


def test_the_consoles_audit_reads_give_the_same_answers_on_sqlite_and_postgres(
    database_url: str, tmp_path: Path
) -> None:
    now = time.time()
    entries = [
        AuditEntry(principal="alice", status=200, ts=now - 7200, endpoint="chat", tokens_in=10, tokens_out=5),
        AuditEntry(principal="alice", status=429, ts=now - 60, endpoint="chat", model="m", tokens_in=3),
        AuditEntry(principal="bob", status=500, ts=now - 30, endpoint="chat", backend="gpu", tokens_out=7),
        AuditEntry(principal="bob", status=200, ts=now - 20, endpoint="console.keys.create"),
    ]
    answers = []
    for where in (audit_table(database_url), audit_table(None, tmp_path / "audit.db")):
        log = AuditLog(where, spool_dir=tmp_path / f"spool-{len(answers)}")
        for e in entries:
            log.record(e)
        assert log.flush()
        log.close()
        reader = database_url if not answers else tmp_path / "audit.db"  # as GatewaySecurity.audit_where
        requests = audit.AuditFilter(requests_only=True)
        since = now - 3 * 3600
        answers.append(
            (
                [(r["principal"], r["status"]) for r in audit.page(reader, limit=10)],
                [r["id"] for r in audit.page(reader, match=audit.AuditFilter(status="5xx"))],
                [r["principal"] for r in audit.page(reader, match=requests, before=3)],
                audit.usage(reader, since=since, bucket_s=3600),
                audit.usage(reader, since=since, bucket_s=3600, principal="bob"),
                audit.totals(reader, since=since),
            )
        )
    assert answers[0] == answers[1]
    page, errors, older, usage, bob, totals = answers[0]
    assert page == [("bob", 200), ("bob", 500), ("alice", 429), ("alice", 200)]  # newest first
    assert errors == [3] and older == ["alice", "alice"]
    assert [(u.requests, u.errors, u.tokens_in, u.tokens_out) for u in usage] == [(1, 0, 10, 5), (2, 2, 3, 7)]
    assert [(u.requests, u.errors) for u in bob] == [(1, 1)]  # the console's own action left out
    assert totals["alice"].requests == 2 and totals["alice"].errors == 1 and totals["bob"].tokens_out == 7
