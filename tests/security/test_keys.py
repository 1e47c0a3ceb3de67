from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from waveidp.cli import app
from waveidp.errors import ApiError, InputError, NotFoundError
from waveidp.security.keys import KeyStore, parse_expiry
from waveidp.security.limits import Limits


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.db")


def refused(store: KeyStore, key: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        store.authenticate(key)
    assert info.value.status == 401
    assert not key or (key not in str(info.value) and key not in json.dumps(info.value.body()))
    return info.value


def test_created_key_authenticates_and_carries_its_scope_and_limits(store: KeyStore) -> None:
    issued = store.create("alice", models=["llama-*", "qwen3"], rpm=10, tpm=1000, max_concurrent=2)
    plain = issued.key.reveal()
    assert plain.startswith("wave-sk-") and len(plain) > 50
    record = store.authenticate(plain)
    assert record.name == "alice" and record.limits == Limits(10, 1000, 2)
    principal = record.principal()
    assert principal.may_use("llama-3.1-8b") and principal.may_use("qwen3")
    assert not principal.may_use("qwen3-32b") and not principal.may_use("mistral")


def test_wrong_secret_unknown_id_and_garbage_are_all_401(store: KeyStore) -> None:
    plain = store.create("bob").key.reveal()
    tampered = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    for bad in (tampered, "wave-sk-000000000000_" + "x" * 43, "sk-123", "", plain + "x"):
        assert refused(store, bad).code == "invalid_api_key"


def test_database_holds_no_plaintext_key(store: KeyStore) -> None:
    plain = store.create("carol").key.reveal()
    secret_part = plain.split("_", 1)[1]
    store.close()
    for f in store.path.parent.glob("keys.db*"):
        assert secret_part.encode() not in f.read_bytes()
    assert store.path.stat().st_mode & 0o077 == 0


def test_revoked_key_is_refused_at_once_even_by_another_open_store(store: KeyStore) -> None:
    plain = store.create("dave").key.reveal()
    gateway_view = KeyStore(store.path)  # e.g. the gateway process, while the CLI revokes
    gateway_view.authenticate(plain)
    store.revoke("dave")
    assert refused(gateway_view, plain).code == "api_key_revoked"
    assert [k.name for k in store.list()] == []
    assert store.list(include_revoked=True)[0].status() == "revoked"


def test_expired_key_is_refused(store: KeyStore) -> None:
    issued = store.create("erin", expires_at=time.time() + 60)
    plain = issued.key.reveal()
    store.authenticate(plain)
    assert refused_at(store, plain, time.time() + 61).code == "api_key_expired"


def refused_at(store: KeyStore, key: str, now: float) -> ApiError:
    with pytest.raises(ApiError) as info:
        store.authenticate(key, now=now)
    assert info.value.status == 401
    return info.value


def test_rotate_replaces_secret_keeps_identity(store: KeyStore) -> None:
    first = store.create("frank", models=["a*"], rpm=5)
    second = store.rotate("frank")
    assert second.record.id == first.record.id and second.record.limits.rpm == 5
    refused(store, first.key.reveal())
    assert store.authenticate(second.key.reveal()).name == "frank"


def test_bad_input_is_a_clear_error(store: KeyStore) -> None:
    store.create("gina")
    with pytest.raises(InputError, match="already exists"):
        store.create("gina")
    with pytest.raises(InputError, match="not allowed"):
        store.create("has space")
    with pytest.raises(InputError, match="rpm must be a positive"):
        store.create("h", rpm=0)
    with pytest.raises(NotFoundError, match="did you mean gina"):
        store.revoke("gine")
    with pytest.raises(InputError, match="in the past"):
        parse_expiry("2001-01-01")
    assert abs(parse_expiry("2d", now=1000.0) - (1000.0 + 2 * 86400)) < 1e-6


def test_cli_create_list_rotate_revoke_json(tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "ci-bot", "-m", "smollm2-*", "--rpm", "60", "--json"])
    assert created.exit_code == 0, created.output
    data = json.loads(created.stdout)
    assert data["name"] == "ci-bot" and data["models"] == ["smollm2-*"] and data["key"].startswith("wave-sk-")
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
    assert [k["name"] for k in listed] == ["ci-bot"] and "key" not in listed[0]
    rotated = json.loads(runner.invoke(app, ["keys", "rotate", "ci-bot", "--json"]).stdout)
    assert rotated["key"] != data["key"] and rotated["id"] == data["id"]
    assert runner.invoke(app, ["keys", "revoke", data["id"]]).exit_code == 0
    assert json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout) == []
    db = sqlite3.connect(Path(__import__("os").environ["WAVE_HOME"]) / "keys.db")
    assert db.execute("SELECT revoked_at IS NOT NULL FROM api_keys").fetchone() == (1,)


def test_verified_key_is_remembered_until_the_table_changes(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waveidp.security import keys

    digests = 0
    real = keys._digest

    def counting(salt: bytes, key: str) -> bytes:
        nonlocal digests
        digests += 1
        return real(salt, key)

    monkeypatch.setattr(keys, "_digest", counting)
    key = store.create("hot").key.reveal()
    digests = 0  # creating it computed one
    for _ in range(50):
        assert store.authenticate(key).name == "hot"
    assert digests == 1  # verified once, then served from memory
    other = KeyStore(store.path)  # e.g. `wave keys revoke` in another process
    other.revoke("hot")
    other.close()
    assert refused(store, key).code == "api_key_revoked"  # the very next request sees it
    fresh = store.create("fresh", expires_at=time.time() + 60).key.reveal()
    store.authenticate(fresh)
    assert refused_at(store, fresh, time.time() + 120).code == "api_key_expired"  # expiry too
