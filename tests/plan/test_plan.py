"""`wave plan` on the seed fleet and on small fleets built to hit one rule each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from markupsafe import escape

from waveidp import fleet
from waveidp.catalog.services import services
from waveidp.errors import NotFoundError
from waveidp.plan import Plan, make_plan, to_html, to_markdown

HOME_LAB = Path(__file__).resolve().parents[2] / "examples" / "home-lab.yaml"

GPU_BOX = """
version: 1
name: t
nodes:
  - name: box
    role: services
    memory_gib: 64
    kubernetes: {k8s}
    devices:
      - {{id: gpu0, hardware: rtx-5070-ti}}
      - {{id: cpu, hardware: ryzen-9-9900x}}
    services: {services}
"""


def _plan(text: str, **kw: object) -> Plan:
    return make_plan(fleet.loads(text, "test.yaml"), **kw)  # type: ignore[arg-type]


def _where(plan: Plan, service: str) -> dict[str | None, str]:
    return {d.node: d.priority for d in plan.decisions() if d.service == service}


def test_every_catalog_service_is_decided_for_the_seed_fleet() -> None:
    plan = make_plan(fleet.load(HOME_LAB))
    assert {d.service for d in plan.decisions()} == set(services())
    for d in plan.decisions():
        assert d.reason.endswith(".") and d.reason.count(". ") == 0, d.reason  # one sentence


def test_seed_fleet_single_user_decisions_are_defensible() -> None:
    plan = make_plan(fleet.load(HOME_LAB))
    assert _where(plan, "vllm") == {"schlimers-server": "must"}
    assert _where(plan, "llamacpp") == {
        "schlimers-server": "must",
        "xps15-inference": "must",
        "jetson": "must",
    }
    assert _where(plan, "wave-gateway") == {"sclimers-gateway": "must"}
    assert _where(plan, "nginx") == {"sclimers-gateway": "must"}
    # DCGM does not support GeForce or Jetson: Won't there, and Wave's exporter takes over (NVML, tegrastats).
    assert _where(plan, "dcgm-exporter") == {
        "schlimers-server": "wont",
        "xps15-inference": "wont",
        "jetson": "wont",
    }
    dcgm = {d.node: d.reason for d in plan.wont if d.service == "dcgm-exporter"}
    assert (
        "GeForce RTX 5070 Ti" in dcgm["schlimers-server"] and "covers it instead" in dcgm["schlimers-server"]
    )
    assert _where(plan, "wave-exporter") == {
        "schlimers-server": "should",
        "xps15-inference": "should",
        "jetson": "should",
    }
    assert not any("no GPU exporter" in u for u in plan.uncertainties)
    # Single user: no Kubernetes scheduler, no paid suite, no training framework.
    for sid in ("runai", "ai-enterprise", "nemo", "rapids", "redis"):
        assert _where(plan, sid) == {None: "wont"}, sid
    assert _where(plan, "triton")["schlimers-server"] == "could"
    vllm = next(d for d in plan.must if d.service == "vllm")
    assert any("CUDA >= 12.8" in u for u in vllm.uncertainties)


def test_goal_and_profile_change_the_plan() -> None:
    plan = make_plan(fleet.load(HOME_LAB), profile="team", goals=["training"])
    assert _where(plan, "nemo") == {"schlimers-server": "should"}
    assert _where(plan, "prometheus") == {"sclimers-gateway": "must"}
    assert _where(plan, "redis") == {"sclimers-gateway": "should"}


def test_runai_needs_licence_and_kubernetes() -> None:
    no_licence = _plan(GPU_BOX.format(k8s="true", services="[]"), profile="team")
    assert _where(no_licence, "runai") == {None: "wont"}
    assert "licence is paid" in next(d.reason for d in no_licence.wont if d.service == "runai")
    licensed = _plan(GPU_BOX.format(k8s="true", services="[]"), profile="team", licences=["runai"])
    assert _where(licensed, "runai") == {"box": "could"}
    no_k8s = _plan(GPU_BOX.format(k8s="false", services="[]"), profile="team", licences=["runai"])
    reason = next(d.reason for d in no_k8s.wont if d.service == "runai")
    assert "needs Kubernetes" in reason


def test_backend_on_a_node_without_the_hardware_is_wont_with_reason() -> None:
    text = """
version: 1
nodes:
  - name: cpu-only
    devices: [{id: cpu, hardware: ryzen-9-9900x}]
    backends:
      - {name: v, engine: vllm, url: "http://127.0.0.1:8000", devices: [cpu], models: [m]}
"""
    plan = _plan(text)
    d = next(d for d in plan.wont if d.service == "vllm")
    assert d.node == "cpu-only"
    assert "needs an NVIDIA GPU and cpu-only has none" in d.reason


def test_unknown_pinned_service_and_goal_suggest_ids() -> None:
    with pytest.raises(NotFoundError, match=r"unknown service 'vlm'.*did you mean vllm"):
        _plan(GPU_BOX.format(k8s="false", services="[vlm]"))
    with pytest.raises(NotFoundError, match=r"unknown goal 'trainig'.*training"):
        _plan(GPU_BOX.format(k8s="false", services="[]"), goals=["trainig"])


def test_pinned_service_is_placed_even_without_its_goal() -> None:
    plan = _plan(GPU_BOX.format(k8s="false", services="[rapids]"))
    assert _where(plan, "rapids") == {"box": "should"}


def test_markdown_and_html_list_every_decision() -> None:
    plan = make_plan(fleet.load(HOME_LAB))
    md, html = to_markdown(plan), to_html(plan)
    for d in plan.decisions():
        assert d.name in md
        assert str(escape(d.reason)) in html
    assert "## Won't" in md and '<h2 class="wont">' in html


def test_cli_json_has_moscow_lists() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "waveidp", "plan", "--fleet", str(HOME_LAB), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    for key in ("must", "should", "could", "wont"):
        assert data[key] and all({"service", "node", "reason"} <= set(d) for d in data[key])


def test_cli_bad_goal_is_one_line_exit_2() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "waveidp", "plan", "--fleet", str(HOME_LAB), "--goal", "nope"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "unknown goal 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_unmeasured_devices_are_uncertain_and_calibrated_ones_are_not() -> None:
    plan = make_plan(fleet.load(HOME_LAB))
    flagged = [u for u in plan.uncertainties if "no calibration measured" in u]
    assert any(u.startswith("AMD Ryzen 9 9900X") or "9900X" in u for u in flagged)
    assert any("RTX 5070 Ti" in u for u in flagged)
    measured = make_plan(fleet.load(HOME_LAB), measured_hardware={"rtx-5070-ti"})
    assert not any("RTX 5070 Ti" in u and "calibration" in u for u in measured.uncertainties)
