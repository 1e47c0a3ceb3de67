"""The `wave exporter` container of a node: which GPUs it reads and what the container needs for it."""

from __future__ import annotations

from typing import Any

from waveidp.catalog.services import service
from waveidp.fleet.models import Node

IMAGE = "waveidp/exporter:local"


def node_nvidia(node: Node) -> tuple[bool, bool]:
    """(has an NVIDIA discrete GPU, is a Jetson) from the node's devices."""
    from waveidp import catalog

    dgpu = jetson = False
    for dev in node.devices:
        hw = catalog.hardware(dev.hardware)
        if "nvidia" in hw.vendor.lower():
            dgpu = dgpu or hw.kind == "gpu"
            jetson = jetson or hw.kind == "soc"
    return dgpu, jetson


def exporter_port() -> int:
    return next(iter(service("wave-exporter").deploy.ports.values()))


def exporter_command(node: Node, dcgm_on_node: bool) -> list[str]:
    """GPU reads are off where DCGM exporter already publishes the same series, and on CPU-only nodes."""
    dgpu, jetson = node_nvidia(node)
    cmd = ["wave", "exporter", "--host", "0.0.0.0", "--port", str(exporter_port())]
    if dcgm_on_node or not (dgpu or jetson):
        cmd.append("--no-gpu")
    return cmd


def compose_exporter(node: Node, dcgm_on_node: bool, restart: str, gpu: dict[str, Any]) -> dict[str, Any]:
    dgpu, jetson = node_nvidia(node)
    port = exporter_port()
    probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{port}/metrics')"
    body: dict[str, Any] = {
        "build": {"context": "./wave"},
        "image": IMAGE,
        "restart": restart,
        "command": exporter_command(node, dcgm_on_node),
        # RAPL energy counters are readable by root only (CVE-2020-8694); root without capabilities
        # on a read-only filesystem reads them and nothing else
        "user": "0:0",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "environment": {"NODE_NAME": node.name},
        "ports": [f"{port}:{port}"],
        "healthcheck": {
            "test": ["CMD", "python", "-c", probe],
            "interval": "30s",
            "timeout": "10s",
            "retries": 5,
            "start_period": "30s",
        },
    }
    if jetson:
        # tegrastats is a host tool of Jetson Linux; it reads sysfs and debugfs, hence privileged
        body["runtime"] = "nvidia"
        body["privileged"] = True
        del body["cap_drop"], body["security_opt"]
        body["volumes"] = ["/usr/bin/tegrastats:/usr/bin/tegrastats:ro"]
    elif dgpu and not dcgm_on_node:
        body["deploy"] = gpu
    return body
