"""`wave deploy` on a running `wave up` with the real llama-server: a swap and a rollback under a
steady load fail no request (streams included), the old engines drain and stop, the deployments
file and the audit log say what happened."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import psutil
import pytest
from deploy_support import GEMMA, SMOLLM2, SteadyLoad, shared_store, wave_up

from support import run_cli
from waveidp.deploy.records import load_deployments
from waveidp.security.audit import rows

pytestmark = [pytest.mark.engine, pytest.mark.serial]  # streams timed against a swap under load
KEY = "deploy-test-key-" + "0123456789abcdef" * 2  # a secret strong enough (issue 19)
SMALL = {"-t": 1, "-np": 2, "-c": 2048}  # two slots of 1024 tokens: small engines on a busy machine


@pytest.fixture(scope="module")
def store(gemma_path: Path, smollm2_path: Path) -> Path:
    return shared_store(gemma_path, smollm2_path)


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_swap_and_a_rollback_under_load_fail_no_request(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(os.environ["WAVE_HOME"])
    env = {"WAVE_MODELS_DIR": str(store), "WAVE_API_KEY": KEY}
    with wave_up(home, env, tmp_path / "up.log") as up:
        # the CLI: fit places it (this machine's CPU), sizing writes the flags
        monkeypatch.setenv("WAVE_MODELS_DIR", str(store))
        args = ["deploy", SMOLLM2, "--name", "chat", "-t", "1", "--slots", "2", "--context", "1024"]
        cli = run_cli(capsys, *args, "--gateway", up.base, "--json")
        assert cli.code == 0, cli.err
        first = json.loads(cli.out)
        assert first["created"] and first["engine"]["backend"] == "chat@1"
        assert first["revision"]["flags"] == {"-ngl": 0, "-c": 2048, "-np": 2, "-t": 1}
        old_pid = first["engine"]["pid"]

        # every request generates 16 tokens (ignore_eos), so some are always in flight on the old engine
        with SteadyLoad(
            up.base, KEY, "chat", clients=3, stream_every=2, max_tokens=16, extra={"ignore_eos": True}
        ) as load:
            load.wait_for(4)
            swap = up.admin("POST", "", {"name": "chat", "model": GEMMA, "flags": SMALL})
            assert swap.status_code == 200, swap.text
            s = swap.json()
            assert s["replaced"] == "chat@1" and s["engine"]["backend"] == "chat@2"
            assert s["drain"]["done"] and s["drain"]["requests"] >= 1 and s["drain"]["cut"] == 0
            assert s["previous"]["model"] == SMOLLM2
            assert _gone(old_pid)
            gemma_pid = s["engine"]["pid"]
            load.wait_for(4)
            back = up.admin("POST", "/chat/rollback")
            assert back.status_code == 200, back.text
            b = back.json()
            assert b["revision"]["model"] == SMOLLM2 and b["previous"]["model"] == GEMMA
            assert b["replaced"] == "chat@2" and b["drain"]["requests"] >= 1 and b["drain"]["cut"] == 0
            assert _gone(gemma_pid)
            load.wait_for(4)

        assert load.failures() == [], load.failures()[:5]
        served = {o.backend for o in load.outcomes}
        assert {"chat@1", "chat@2", "chat@3"} <= served, served
        # requests (streams among them) that the old engines finished after the new one took over
        for old, new in (("chat@1", "chat@2"), ("chat@2", "chat@3")):
            took_over = min(o.started for o in load.outcomes if o.backend == new)
            finished = [o for o in load.outcomes if o.backend == old and o.ended > took_over]
            assert finished, f"no request of {old} was in flight when {new} took over"
        drained_streams = [o for o in load.outcomes if o.stream and o.backend in ("chat@1", "chat@2")]
        short = [o for o in drained_streams if o.tokens != 16]
        assert drained_streams and not short, short

        metrics = httpx.get(up.base + "/metrics", timeout=10).text
        assert 'wave_backend_healthy{backend="chat@3"} 1.0' in metrics
        assert 'wave_backend_healthy{backend="chat@1"}' not in metrics  # gone with its engine

        # what is deployed is on disk for the next start, and the admin actions are audited
        (d,) = load_deployments(home / "deployments.json")
        assert d.name == "chat" and d.revision.model == SMOLLM2 and d.previous and d.previous.model == GEMMA
        up.proc.terminate()
        assert up.proc.wait(30) == 0
    actions = [
        (r["endpoint"], r["status"], r["principal"])
        for r in rows(home / "audit.db")
        if r["principal"] == "admin"
    ]
    assert actions == [
        ("admin:deploy chat", 201, "admin"),
        ("admin:deploy chat", 200, "admin"),
        ("admin:rollback chat", 200, "admin"),
    ]
