"""Where `wave render` puts `wave exporter` and what its container gets on each kind of node."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from render_support import needs, write_tree

from waveidp import fleet
from waveidp.plan import make_plan
from waveidp.render import fill, render, required_secrets

DATACENTER = """
version: 1
name: dc
nodes:
  - name: h100-box
    address: 10.0.0.7
    devices: [{id: gpu0, hardware: h100-sxm}]
    backends:
      - name: big
        engine: vllm
        url: http://10.0.0.7:8000
        devices: [gpu0]
        models: [{name: m, model: llama-3.1-8b, quant: bf16, context: 8192}]
  - name: gw
    address: 10.0.0.6
    role: services
gateway: {node: gw}
"""


def _compose(files: dict[str, str], node: str) -> dict:
    return yaml.safe_load(files[f"{node}/docker-compose.yml"])["services"]


def test_geforce_node_exporter_reads_its_gpus_through_nvml(home_lab_files: dict[str, str]) -> None:
    svc = _compose(home_lab_files, "schlimers-server")["wave-exporter"]
    assert svc["command"] == ["wave", "exporter", "--host", "0.0.0.0", "--port", "9401"]
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert svc["ports"] == ["9401:9401"] and svc["environment"] == {"NODE_NAME": "schlimers-server"}
    assert svc["user"] == "0:0" and svc["read_only"] and svc["cap_drop"] == ["ALL"]
    assert "schlimers-server/wave/Dockerfile" in home_lab_files  # the image is built on the node


def test_jetson_exporter_runs_the_hosts_tegrastats(home_lab_files: dict[str, str]) -> None:
    svc = _compose(home_lab_files, "jetson")["wave-exporter"]
    assert svc["runtime"] == "nvidia" and svc["privileged"] is True
    assert "/usr/bin/tegrastats:/usr/bin/tegrastats:ro" in svc["volumes"]
    assert "--no-gpu" not in svc["command"] and "deploy" not in svc


@needs("docker-compose")
def test_beside_dcgm_the_exporter_reads_only_the_host(tmp_path: Path) -> None:
    f = fleet.loads(DATACENTER, "dc.yaml")
    plan = make_plan(f, profile="team")
    files = render(f, plan, "compose", fill(required_secrets(f, plan), {}))
    services = _compose(files, "h100-box")
    assert "dcgm-exporter" in services
    exporter = services["wave-exporter"]
    assert exporter["command"][-1] == "--no-gpu" and "deploy" not in exporter  # no GPU series twice
    prom = yaml.safe_load(files["gw/prometheus/prometheus.yml"])
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom["scrape_configs"]}
    assert jobs["gpu-dcgm"] == ["10.0.0.7:9400"] and jobs["wave-exporter"] == ["10.0.0.7:9401"]
    node_dir = write_tree(tmp_path, files) / "h100-box"
    r = subprocess.run(
        ["docker-compose", "-f", str(node_dir / "docker-compose.yml"), "config", "-q"],
        cwd=node_dir, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
