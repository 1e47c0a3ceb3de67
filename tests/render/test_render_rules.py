"""Render behaviour a user relies on: determinism, kept secrets, drift, sized flags, clear errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from render_support import HOME_LAB

from waveidp import fleet
from waveidp.plan import make_plan
from waveidp.render import RenderError, render

WAVE = [sys.executable, "-m", "waveidp"]

TWO_ENGINES = """
version: 1
name: t
nodes:
  - name: box
    address: 127.0.0.1
    role: services
    devices:
      - {{id: gpu0, hardware: rtx-5070-ti}}
      - {{id: cpu, hardware: ryzen-9-9900x}}
    {lxc}
    backends:
      - name: gpu
        engine: vllm
        url: http://127.0.0.1:8000
        devices: [gpu0]
        models: [{{name: m, model: {model}, quant: {quant}, context: 8192}}]
      - name: cpu
        engine: llamacpp
        url: http://127.0.0.1:{cpu_port}
        devices: [cpu]
        models: [{{name: s, model: llama-3.2-1b, quant: q4_k_m, context: 4096}}]
"""


def _fleet(
    model: str = "llama-3.1-8b", quant: str = "awq", cpu_port: int = 8080, lxc: str = ""
) -> fleet.Fleet:
    return fleet.loads(TWO_ENGINES.format(model=model, quant=quant, cpu_port=cpu_port, lxc=lxc), "t.yaml")


def test_render_is_byte_identical_for_the_same_input() -> None:
    f = fleet.load(HOME_LAB)
    secrets = {"WAVE_BACKEND_KEY_VLLM_5070TI": "k1"}
    a = render(f, make_plan(f), "compose", secrets)
    b = render(fleet.load(HOME_LAB), make_plan(fleet.load(HOME_LAB)), "compose", dict(secrets))
    assert a == b
    assert list(a) == sorted(a)


def test_port_clash_names_both_backends() -> None:
    f = _fleet(cpu_port=8000)
    with pytest.raises(
        RenderError, match=r"node box: host port 8000 is used by both backend gpu and backend cpu"
    ):
        render(f, make_plan(f))


def test_port_clash_with_an_infrastructure_service() -> None:
    f = _fleet(cpu_port=4000)  # the gateway's port on the services node
    with pytest.raises(
        RenderError, match=r"host port 4000 is used by both backend cpu and service wave-gateway"
    ):
        render(f, make_plan(f))


def test_model_that_cannot_fit_names_node_backend_model_and_arithmetic() -> None:
    f = _fleet(model="llama-3.3-70b", quant="bf16")
    with pytest.raises(RenderError) as info:
        render(f, make_plan(f))
    text = str(info.value)
    assert text.startswith("node box, backend gpu: model llama-3.3-70b (bf16, context 8192) does not fit")
    assert "weights 141.1 GB" in text and "exceed the 15.5 GB available" in text


def test_lxc_guest_with_gpu_gets_passthrough_lines() -> None:
    f = _fleet(lxc="lxc: {host: pve, vmid: 107}")
    files = render(f, make_plan(f))
    conf = files["box/proxmox/lxc-107.conf"]
    assert "lxc.cgroup2.devices.allow: c 195:* rwm" in conf
    assert "lxc.mount.entry: /dev/nvidia0 dev/nvidia0 none bind,optional,create=file" in conf
    assert "lxc.mount.entry: /dev/nvidia-uvm dev/nvidia-uvm" in conf
    assert "stat -c %t /dev/nvidia-uvm" in files["box/proxmox/lxc-107-uvm.sh"]
    assert "pct stop 107 && pct start 107" in files["box/README.md"]
    # the seed's GTX 1650 guest (LXC 107 on xps15) gets them; its services LXC, without GPUs, needs none
    seed = render(fleet.load(HOME_LAB), make_plan(fleet.load(HOME_LAB)))
    assert [p for p in seed if "/proxmox/" in p] == [
        "xps15-inference/proxmox/lxc-107-uvm.sh",
        "xps15-inference/proxmox/lxc-107.conf",
    ]
    assert "on the Proxmox host xps15 (guest xps15-inference)" in seed["xps15-inference/proxmox/lxc-107.conf"]


def _flags(command: list[str]) -> dict[str, str]:
    return {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("-")}


def _wave_size(*args: str) -> dict:
    out = subprocess.run([*WAVE, "size", *args, "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_seed_fleet_engine_flags_fit_according_to_wave_size(home_lab_files: dict[str, str]) -> None:
    f = fleet.load(HOME_LAB)
    checked = 0
    for node in f.nodes:
        path = f"{node.name}/docker-compose.yml"
        if path not in home_lab_files:
            continue
        services = yaml.safe_load(home_lab_files[path])["services"]
        for b in node.backends:
            if b.engine not in ("vllm", "llamacpp"):
                continue
            m = b.served()[0]
            flags = _flags(services[b.name]["command"])
            devices = [a for d in node.devices if d.id in b.devices for a in ("-d", d.hardware)]
            if b.engine == "vllm":
                devices = [
                    a for d in node.devices if d.id in b.devices and d.id != "cpu" for a in ("-d", d.hardware)
                ]
                r = _wave_size(
                    "-m",
                    m.model or "",
                    "-q",
                    m.quant or "",
                    *devices,
                    "-e",
                    "vllm",
                    "-c",
                    flags["--max-model-len"],
                    "--gpu-memory-utilization",
                    flags["--gpu-memory-utilization"],
                )
                assert int(flags["--max-num-seqs"]) * (512 + 256) <= r["memory"]["kv_capacity_tokens"]
            else:
                slots = int(flags["-np"])
                r = _wave_size(
                    "-m",
                    m.model or "",
                    "-q",
                    m.quant or "",
                    *devices,
                    "-e",
                    "llamacpp",
                    "-c",
                    str(int(flags["-c"]) // slots),
                    "--concurrency",
                    str(slots),
                    "-ngl",
                    flags["-ngl"],
                )
                assert r["max_concurrency"] >= slots, (b.name, r["reasons"])
            assert r["verdict"] != "impossible", (b.name, r["reasons"])
            for dev in r["memory"]["devices"]:
                if dev["available_bytes"]:  # sizing's "host-ram" stand-in on a SoC has no pool of its own
                    assert dev["used_bytes"] <= dev["available_bytes"], (b.name, dev)
            checked += 1
    assert checked == 4


def test_cli_writes_secrets_0600_keeps_them_and_reports_drift(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    subprocess.run([*WAVE, "render", "-f", str(HOME_LAB), "-o", str(out)], check=True, capture_output=True)
    env = out / "schlimers-server" / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    first = env.read_text()
    key = next(ln for ln in first.splitlines() if ln.startswith("WAVE_BACKEND_KEY_VLLM_5070TI="))
    assert len(key.split("=", 1)[1]) >= 40
    # the gateway node holds the same key, so the gateway can call the engine
    assert key in (out / "sclimers-gateway" / ".env").read_text()
    assert "WAVE_BACKEND_KEY_VLLM_5070TI=\n" in (out / "schlimers-server" / ".env.example").read_text()

    again = subprocess.run(
        [*WAVE, "render", "-f", str(HOME_LAB), "-o", str(out)], capture_output=True, text=True
    )
    assert again.returncode == 0 and env.read_text() == first  # kept, not regenerated

    clean = subprocess.run(
        [*WAVE, "render", "-f", str(HOME_LAB), "-o", str(out), "--check"], capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stdout
    compose = out / "xps15-inference" / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("-np", "-np-edited"))
    os.remove(out / "jetson" / "README.md")
    drift = subprocess.run(
        [*WAVE, "render", "-f", str(HOME_LAB), "-o", str(out), "--check"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert drift.returncode == 1
    assert "changed  " in drift.stdout and "xps15-inference/docker-compose.yml" in drift.stdout
    assert "missing  " in drift.stdout and "jetson/README.md" in drift.stdout


def test_cli_port_clash_is_one_line_exit_2(tmp_path: Path) -> None:
    fleet_file = tmp_path / "wave.yaml"
    fleet_file.write_text(TWO_ENGINES.format(model="llama-3.1-8b", quant="awq", cpu_port=8000, lxc=""))
    r = subprocess.run(
        [*WAVE, "render", "-f", str(fleet_file), "-o", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "host port 8000 is used by both backend gpu and backend cpu" in r.stderr
    assert not (tmp_path / "out").exists()


def test_pinning_a_could_service_renders_it() -> None:
    pin = "    role: services\n    services: [mlflow]\n"
    text = HOME_LAB.read_text().replace("    role: services\n", pin)
    f = fleet.loads(text, "home-lab.yaml")
    files = render(f, make_plan(f), "compose", {})
    services = yaml.safe_load(files["sclimers-gateway/docker-compose.yml"])["services"]
    assert services["mlflow"]["ports"] == ["5000:5000"]
    baseline = render(fleet.load(HOME_LAB), make_plan(fleet.load(HOME_LAB)), "compose", {})
    assert "mlflow" not in yaml.safe_load(baseline["sclimers-gateway/docker-compose.yml"])["services"]
