from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from waveidp.security.admin_api import admin_router
from waveidp.security.keys import KeyStore
from waveidp.security.refusals import install_handlers
from waveidp.security.secrets import Secret

ADMIN = "adm-" + "z" * 40
ADMIN_SECRET = Secret(ADMIN)


def client(tmp_path: Path, admin: Secret | None = ADMIN_SECRET) -> tuple[TestClient, KeyStore]:
    store = KeyStore(tmp_path / "keys.db")
    app = FastAPI()
    install_handlers(app)
    app.include_router(admin_router(store, admin))
    return TestClient(app), store


def test_admin_api_manages_keys(tmp_path: Path) -> None:
    c, store = client(tmp_path)
    auth = {"authorization": f"Bearer {ADMIN}"}
    r = c.post(
        "/admin/keys", json={"name": "svc", "models": ["smollm2-*"], "rpm": 30, "expires": "7d"}, headers=auth
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert store.authenticate(created["key"]).name == "svc"
    listed = c.get("/admin/keys", headers=auth).json()["data"]
    assert [k["name"] for k in listed] == ["svc"] and "key" not in listed[0] and listed[0]["expires_at"]
    rotated = c.post("/admin/keys/svc/rotate", headers=auth).json()
    assert rotated["key"] != created["key"] and store.authenticate(rotated["key"]).id == created["id"]
    assert c.delete(f"/admin/keys/{created['id']}", headers=auth).json()["status"] == "revoked"
    assert c.get("/admin/keys", headers=auth).json()["data"] == []


def test_admin_api_refusals_have_openai_bodies(tmp_path: Path) -> None:
    c, store = client(tmp_path)
    user_key = store.create("user").key.reveal()
    auth = {"authorization": f"Bearer {ADMIN}"}
    cases = [
        (c.get("/admin/keys"), 401, "missing_api_key"),
        (c.get("/admin/keys", headers={"authorization": f"Bearer {user_key}"}), 401, "invalid_api_key"),
        (c.post("/admin/keys", json={"name": "user"}, headers=auth), 400, "invalid_key_request"),
        (c.post("/admin/keys", json={"name": "x", "rpm": 0}, headers=auth), 400, "invalid_request"),
        (c.post("/admin/keys", json={"name": "x", "bogus": 1}, headers=auth), 400, "invalid_request"),
        (c.delete("/admin/keys/nobody", headers=auth), 404, "key_not_found"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and set(error) == {"message", "type", "param", "code"}
        assert ADMIN not in response.text and user_key not in response.text
    c2, _ = client(tmp_path / "2", admin=None)
    off = c2.get("/admin/keys", headers=auth)
    assert off.status_code == 403 and off.json()["error"]["code"] == "admin_disabled"
