from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from waveidp.security import audit
from waveidp.security.audit import AuditEntry, AuditLog


def fill(path: Path, n: int, *, log_prompts: bool = False) -> None:
    log = AuditLog(path, log_prompts=log_prompts)
    for i in range(n):
        log.record(
            AuditEntry(
                principal=f"key-{i % 3}",
                status=200,
                model="smollm2",
                backend="local",
                endpoint="/v1/chat/completions",
                tokens_in=10 + i,
                tokens_out=i,
                latency_s=0.01 * i,
                prompt=f"secret prompt {i}",
            )
        )
    assert log.flush()
    log.close()


def wave_audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waveidp", "audit", *args], capture_output=True, text=True, timeout=60
    )


def test_intact_chain_verifies_and_prompts_are_not_kept_by_default(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    fill(db, 25)
    verdict = audit.verify(db)
    assert verdict.ok and verdict.rows == 25 and len(verdict.head) == 64
    rows = list(audit.rows(db))
    assert [r["id"] for r in rows] == list(range(1, 26))
    assert all(r["prompt"] is None for r in rows)
    assert rows[3]["principal"] == "key-0" and rows[3]["tokens_in"] == 13
    assert [r["id"] for r in audit.rows(db, last=3)] == [23, 24, 25]


def test_prompts_are_kept_when_log_prompts_is_on(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    fill(db, 2, log_prompts=True)
    assert [r["prompt"] for r in audit.rows(db)] == ["secret prompt 0", "secret prompt 1"]


def test_tampering_edit_delete_and_truncate_are_caught_naming_the_row(tmp_path: Path) -> None:
    """The Must-hold tampering test: `wave audit verify` exits non-zero naming the first broken row."""
    db = tmp_path / "audit.db"
    fill(db, 10)
    ok = wave_audit("verify", "--db", str(db))
    assert ok.returncode == 0 and "10 rows" in ok.stdout

    raw = sqlite3.connect(db)
    raw.execute("UPDATE audit SET tokens_out = 9999 WHERE id = 7")  # someone hides usage
    raw.commit()
    edited = wave_audit("verify", "--db", str(db))
    assert edited.returncode == 1
    assert "broken at row 7" in edited.stderr and "edited" in edited.stderr

    raw.execute("UPDATE audit SET tokens_out = 6 WHERE id = 7")  # undo: intact again
    raw.commit()
    assert wave_audit("verify", "--db", str(db)).returncode == 0

    raw.execute("DELETE FROM audit WHERE id = 4")
    raw.commit()
    deleted = wave_audit("verify", "--db", str(db), "--json")
    assert deleted.returncode == 1
    verdict = json.loads(deleted.stdout)
    assert verdict["broken_row"] == 4 and "deleted" in verdict["reason"] and verdict["rows"] == 3


def test_truncating_the_end_and_rewriting_a_hash_are_caught(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    fill(db, 6)
    raw = sqlite3.connect(db)
    raw.execute("DELETE FROM audit WHERE id >= 5")
    raw.commit()
    v = audit.verify(db)
    assert not v.ok and v.broken_row == 5 and "end of the log" in (v.reason or "")

    fill(db, 1)  # appending after a cut continues the id sequence; the gap stays visible
    v = audit.verify(db)
    assert not v.ok and v.broken_row == 5

    db2 = tmp_path / "audit2.db"
    fill(db2, 4)
    raw2 = sqlite3.connect(db2)
    raw2.execute("UPDATE audit SET principal='mallory', hash=? WHERE id=2", ("f" * 64,))
    raw2.commit()
    v = audit.verify(db2)
    assert not v.ok and v.broken_row == 2


def test_two_writers_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    logs = [AuditLog(db), AuditLog(db)]

    def write(log: AuditLog, tag: str) -> None:
        for i in range(200):
            log.record(AuditEntry(principal=tag, status=200, tokens_in=i))

    threads = [threading.Thread(target=write, args=(log, f"replica-{n}")) for n, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        assert log.flush()
        log.close()
    verdict = audit.verify(db)
    assert verdict.ok and verdict.rows == 400


def test_record_does_not_wait_for_the_disk(tmp_path: Path) -> None:
    """While another process holds the write lock, record() returns; the rows land afterwards."""
    db = tmp_path / "audit.db"
    log = AuditLog(db)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    for i in range(50):
        log.record(AuditEntry(principal="p", status=200, tokens_in=i))  # would block if it wrote inline
    assert log.written == 0
    blocker.execute("COMMIT")
    assert log.flush(timeout=30)
    log.close()
    assert audit.verify(db).rows == 50


def test_cli_tail_and_export(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    fill(db, 5)
    tail = wave_audit("tail", "-n", "2", "--db", str(db), "--json")
    assert tail.returncode == 0 and [r["id"] for r in json.loads(tail.stdout)] == [4, 5]
    out = tmp_path / "audit.jsonl"
    exported = wave_audit("export", "--format", "jsonl", "-o", str(out), "--db", str(db))
    assert exported.returncode == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5 and lines[0]["prev_hash"] == "0" * 64 and lines[1]["prev_hash"] == lines[0]["hash"]
    bad = wave_audit("export", "--format", "csv", "--db", str(db))
    assert bad.returncode == 2 and "unknown export format" in bad.stderr
    missing = wave_audit("verify", "--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no audit log" in missing.stderr


@pytest.mark.parametrize("n", [0])
def test_empty_log_verifies(tmp_path: Path, n: int) -> None:
    db = tmp_path / "audit.db"
    fill(db, n)
    assert audit.verify(db).ok
