"""The console's pure parts without a browser: the routing share, GPU telemetry on the fleet's
devices, sessions (expiry, idle, logout, one-use OIDC logins) and where sign-in may send you."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from waveidp.console.access import safe_next
from waveidp.console.fleet_view import RoutingShare, device_rows
from waveidp.console.oidc import Pending, challenge
from waveidp.console.options import check_console_bind
from waveidp.console.sessions import SessionStore
from waveidp.errors import ConfigError
from waveidp.fleet.models import Fleet
from waveidp.gateway.metrics import GatewayMetrics
from waveidp.observe.samples import GpuSample, NodeSample
from waveidp.security.secrets import Secret


def test_routing_share_counts_decisions_since_the_gateway_started() -> None:
    metrics = GatewayMetrics()
    share = RoutingShare(metrics, window_s=300, every_s=5)
    for backend, n in (("gpu", 3), ("cpu", 1)):
        metrics.child(metrics.decisions, "predicted-latency", backend).inc(n)
    assert share.shares() == {"gpu": 0.75, "cpu": 0.25}
    share.sample(time.monotonic() + 400)  # five minutes on: the old baseline ages out
    share.sample(time.monotonic() + 800)
    metrics.child(metrics.decisions, "predicted-latency", "cpu").inc(2)
    assert share.shares() == {"gpu": 0.0, "cpu": 1.0}


def test_gpu_telemetry_lands_on_the_fleet_files_gpu_devices() -> None:
    fleet = Fleet.model_validate(
        {"nodes": [{"name": "box", "devices": [{"id": "cpu", "hardware": "ryzen-9-9900x"},
                                                {"id": "gpu0", "hardware": "rtx-5070-ti"}]}]}
    )  # fmt: skip
    gpu = GpuSample(index=0, name="NVIDIA GeForce RTX 5070 Ti", source="nvml", memory_used_bytes=4 << 30,
                    memory_total_bytes=16 << 30, util_percent=55.0, power_w=180.0, temp_c=61.0)  # fmt: skip
    sample = NodeSample(time.time(), 0.01, "box", "580", None, (gpu,), None, {})
    rows = {r.device: r for r in device_rows(fleet, {"box": sample})}
    assert rows["cpu"].memory_fraction is None  # a CPU takes no GPU's sample
    assert rows["gpu0"].memory_fraction == 0.25 and rows["gpu0"].power_w == 180.0
    assert rows["gpu0"].temperature_c == 61.0
    elsewhere = device_rows(None, {"other": sample})  # a node only the telemetry knows
    assert [(r.node, r.hardware) for r in elsewhere] == [("other", "NVIDIA GeForce RTX 5070 Ti")]


def test_sessions_end_at_logout_idle_and_expiry(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "console.db", idle_s=60, absolute_s=3600)
    sid = store.create("admin", "admin-key", "admin")
    assert store.get(sid) is not None and store.get(sid).is_admin  # type: ignore[union-attr]
    assert sid not in (tmp_path / "console.db").read_bytes().decode(errors="ignore")  # only its hash
    assert oct((tmp_path / "console.db").stat().st_mode & 0o777) == "0o600"
    store.end(sid)
    assert store.get(sid) is None
    old = store.create("viewer", "oidc", "viewer")
    store._db.execute("UPDATE console_sessions SET seen_at = seen_at - 61")
    assert store.get(old) is None  # idle too long
    store.put_pending("state-1", Pending("verifier", "nonce", "http://x/cb"))
    assert store.take_pending("state-1") == Pending("verifier", "nonce", "http://x/cb")
    assert store.take_pending("state-1") is None  # one use


def test_pkce_challenge_is_rfc7636s_s256() -> None:
    # RFC 7636, appendix B
    assert (
        challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


@pytest.mark.parametrize(
    "target", ["//evil.test/", "https://evil.test/", "/console/\\evil", "/elsewhere", None]
)
def test_sign_in_only_returns_to_console_pages(target: str | None) -> None:
    assert safe_next(target) == "/console/"


def test_the_console_needs_an_admin_key_off_loopback() -> None:
    check_console_bind("127.0.0.1", None)
    check_console_bind("0.0.0.0", Secret("k", name="admin key"))
    with pytest.raises(ConfigError, match="without an admin key"):
        check_console_bind("0.0.0.0", None)


def test_wave_serve_refuses_a_public_bind_without_an_admin_key(tmp_path: Path) -> None:
    import os
    import subprocess

    from console_support import WAVE

    env = {k: v for k, v in os.environ.items() if not k.startswith("WAVE_ADMIN_KEY")}
    r = subprocess.run(
        [WAVE, "serve", "--upstream", "http://127.0.0.1:9", "--host", "0.0.0.0", "--engine", "openai"],
        capture_output=True, text=True, timeout=60, env={**env, "WAVE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert r.returncode == 2 and "refusing to serve the console on 0.0.0.0 without an admin key" in r.stderr
    assert "Traceback" not in r.stderr
