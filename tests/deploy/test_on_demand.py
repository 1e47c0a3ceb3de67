"""Deployments recorded in WAVE_HOME come back with `wave up`; load on demand and unload when idle
with the real llama-server; the admin API's refusals; `wave deploy`'s errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import psutil
import pytest
from deploy_support import GEMMA, SMOLLM2, Up, shared_store, wave_up

from support import run_cli
from waveidp.deploy import Deployment, Residence, Revision, save_deployments

pytestmark = pytest.mark.engine
KEY = "on-demand-test-key-" + "0123456789abcdef" * 2  # a secret strong enough (issue 19)
SMALL = {"-t": 1, "-np": 2, "-c": 2048}


def exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def store(gemma_path: Path, smollm2_path: Path) -> Path:
    return shared_store(gemma_path, smollm2_path)


def ask(up: Up, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return httpx.post(
        up.base + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=120
    )


def state(up: Up, name: str) -> dict:
    (found,) = [d for d in up.admin("GET", "").json()["data"] if d["name"] == name]
    return found["engine"]


def test_recorded_deployments_come_back_and_load_on_demand(tmp_path: Path, store: Path) -> None:
    home = Path(os.environ["WAVE_HOME"])
    save_deployments(
        [
            Deployment(name="chat", revision=Revision(model=SMOLLM2, flags=SMALL)),
            Deployment(
                name="lazy",
                revision=Revision(model=SMOLLM2, flags=SMALL),
                residence=Residence(on_demand=True, idle_unload_s=1.5),
            ),
            Deployment(
                name="impatient",
                revision=Revision(model=GEMMA, flags=SMALL),
                residence=Residence(on_demand=True, load_timeout_s=0.2),
            ),
        ],
        home / "deployments.json",
    )
    env = {"WAVE_MODELS_DIR": str(store), "WAVE_API_KEY": KEY}
    with wave_up(home, env, tmp_path / "up.log") as up:
        assert set(up.info["models"]) >= {"chat", "lazy", "impatient"}
        lines = up.ready()["backends"]
        assert lines["chat@1"].endswith("healthy")
        assert "not loaded (loads on demand in ~" in lines["lazy@3"]
        assert state(up, "lazy")["pid"] is None

        r = ask(up, "lazy")  # waits while the engine loads
        assert r.status_code == 200 and r.headers["x-wave-backend"] == "lazy@3"
        pid = state(up, "lazy")["pid"]
        assert psutil.pid_exists(pid) and state(up, "lazy")["state"] == "loaded"
        deadline = time.monotonic() + 20
        while state(up, "lazy")["state"] == "loaded":  # idle 1.5 s: unloaded
            assert time.monotonic() < deadline, "not unloaded after its idle time"
            time.sleep(0.2)
        # the state says unloaded as the engine is told to stop; its exit follows within its grace time
        while not exited(pid):
            assert time.monotonic() < deadline + 10, "the unloaded engine's process did not exit"
            time.sleep(0.1)
        assert ask(up, "lazy").status_code == 200  # loaded again

        r = ask(up, "impatient")  # Gemma loads in seconds; this deployment waits 0.2 s
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "model_loading" and "impatient@2" in err["message"]
        assert int(r.headers["retry-after"]) >= 1
        deadline = time.monotonic() + 90
        while (r := ask(up, "impatient")).status_code == 503:  # the load went on: a retry is answered
            assert r.json()["error"]["code"] == "model_loading"
            assert time.monotonic() < deadline, "the load never finished"
            time.sleep(min(2.0, int(r.headers["retry-after"])))
        assert r.status_code == 200 and r.headers["x-wave-backend"] == "impatient@2"

        # wave up's own engine (the packaged SmolLM2) is swapped out by a deployment of its name
        taken = up.admin("POST", "", {"name": "smollm2-135m-instruct", "model": SMOLLM2, "flags": SMALL})
        assert taken.status_code == 201 and taken.json()["replaced"] == "embedded"
        assert ask(up, "smollm2-135m-instruct").headers["x-wave-backend"] == "smollm2-135m-instruct@4"

        # the admin API refuses what it cannot do, in OpenAI's error shape
        assert up.admin("GET", "", key="not-the-admin-key").status_code == 401
        assert up.admin("GET", "", key=KEY).status_code == 401  # an API key never opens /admin
        bad = up.admin("POST", "", {"name": "x", "model": SMOLLM2, "flags": {"--mlock": 1}})
        assert bad.status_code == 400 and "--mlock" in bad.json()["error"]["message"]
        missing = up.admin("POST", "", {"name": "x", "model": "no-such-model"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_in_store"
        first = up.admin("POST", "/chat/rollback")
        assert first.status_code == 409 and "no earlier revision" in first.json()["error"]["message"]
        assert up.admin("DELETE", "/nobody").status_code == 404
        gone = up.admin("DELETE", "/lazy")
        assert gone.status_code == 200 and gone.json()["drain"]["done"]
        assert ask(up, "lazy").status_code == 404


def test_wave_deploy_says_what_is_wrong_in_one_line(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVE_MODELS_DIR", str(store))
    monkeypatch.delenv("WAVE_ADMIN_KEY", raising=False)

    def wave(*args: str) -> str:
        return run_cli(capsys, *args).error  # exit 2, one line, no traceback

    assert "did you mean smollm2-135m-instruct-q4_1" in wave("deploy", "smollm2-135m-instruct-q4_2")
    assert "no fleet file names it" in wave("deploy", SMOLLM2, "--on", "gpu-box/gpu0")
    assert "no admin key" in wave("deploy", SMOLLM2, "--gateway", "http://127.0.0.1:9")  # no wave up ran here
    assert "--idle-unload: cannot read the duration 'soon'" in wave(
        "deploy", SMOLLM2, "--idle-unload", "soon"
    )
    monkeypatch.setenv("WAVE_ADMIN_KEY", "some-admin-key")
    assert "cannot reach the gateway at http://127.0.0.1:9" in wave(
        "deployments", "--gateway", "http://127.0.0.1:9"
    )
