"""A node's README gives commands only for the files rendered for that node."""

from __future__ import annotations

import re

from waveidp import fleet
from waveidp.plan import make_plan
from waveidp.render import render

EXTERNAL_ONLY = """
version: 1
name: t
nodes:
  - name: box
    address: 10.0.0.5
    devices: [{id: cpu, hardware: ryzen-9-9900x}]
    backends:
      - name: remote
        engine: openai
        url: http://10.0.0.5:9000/v1
        devices: [cpu]
        models: [{name: m, model: llama-3.2-1b, quant: q4_k_m, context: 4096}]
  - name: gw
    address: 10.0.0.6
    role: services
gateway: {node: gw}
"""


def _nodes(files: dict[str, str]) -> list[str]:
    return sorted(p.split("/")[0] for p in files if p.endswith("/README.md"))


def test_every_home_lab_readme_names_only_files_rendered_for_its_node(home_lab_files: dict[str, str]) -> None:
    for node in _nodes(home_lab_files):
        readme = home_lab_files[f"{node}/README.md"]
        has_compose = f"{node}/docker-compose.yml" in home_lab_files
        assert ("docker compose up -d" in readme) == has_compose, node
        assert ("chmod 600 .env" in readme) == (f"{node}/.env" in home_lab_files), node
        for rel in re.findall(r"(?<![./\w])((?:proxmox|nginx|wave)/[\w.-]+\.(?:conf|sh|yaml))", readme):
            assert f"{node}/{rel}" in home_lab_files, (node, rel)


def test_proxmox_host_readme_says_it_hosts_the_guests_instead_of_starting_compose(
    home_lab_files: dict[str, str],
) -> None:
    assert not any(p.startswith("xps15/") and p != "xps15/README.md" for p in home_lab_files)
    readme = home_lab_files["xps15/README.md"]
    assert "docker compose" not in readme and "curl" not in readme
    assert "LXC 107 runs the node **xps15-inference**" in readme
    assert "LXC 101 runs the node **sclimers-gateway**" in readme
    # the GPU passthrough files live with the guest; the host README points there
    assert (
        "../xps15-inference/proxmox/" in readme and "xps15-inference/proxmox/lxc-107.conf" in home_lab_files
    )
    assert "Wave starts nothing on this node itself" in readme
    # the guest keeps its own start and passthrough commands
    guest = home_lab_files["xps15-inference/README.md"]
    assert "docker compose up -d" in guest and "cat proxmox/lxc-107.conf >> /etc/pve/lxc/107.conf" in guest


def test_node_with_only_external_backends_gets_no_start_commands() -> None:
    f = fleet.loads(EXTERNAL_ONLY, "t.yaml")
    files = render(f, make_plan(f), "compose", {})
    assert "box/docker-compose.yml" not in files
    readme = files["box/README.md"]
    assert "docker compose" not in readme and "chmod" not in readme
    assert "Wave renders no containers for this node" in readme and "**remote** (openai" in readme
