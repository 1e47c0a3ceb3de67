"""`render(fleet, plan, target, secrets) -> {path: text}`: pure; the CLI writes the files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml

from waveidp.fleet.models import Fleet
from waveidp.plan import Plan, to_markdown
from waveidp.render._compose import compose_file
from waveidp.render._engines import models_dir
from waveidp.render._exporter import exporter_port, node_nvidia
from waveidp.render._gateway import DOCKER_BRIDGES, gateway_config
from waveidp.render._k8s import render_k8s
from waveidp.render._layout import NodeLayout, layout
from waveidp.render._observe import alert_rules, dashboard_json, grafana_files, prometheus_config
from waveidp.render._secrets import Kind, env_text, node_secrets

Target = Literal["compose", "k8s"]

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=False,  # config files and Markdown, never HTML
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def to_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)


def template(name: str, **values: Any) -> str:
    return _ENV.get_template(name).render(**values)


def layouts(fleet: Fleet, plan: Plan) -> list[NodeLayout]:
    return [layout(fleet, plan, n) for n in fleet.nodes]


def required_secrets(fleet: Fleet, plan: Plan, target: Target = "compose") -> dict[str, Kind]:
    """Every secret the rendered files refer to, by name (for the caller to fill)."""
    out: dict[str, Kind] = {}
    if target == "k8s":
        return out  # manifests reference the Secret `wave-secrets`; its values never pass through Wave
    for lay in layouts(fleet, plan):
        for name, (kind, _) in node_secrets(fleet, lay).items():
            out[name] = kind
    return dict(sorted(out.items()))


def render(
    fleet: Fleet, plan: Plan, target: Target = "compose", secrets: Mapping[str, str] | None = None
) -> dict[str, str]:
    """All deployment files for the fleet, by relative path. Same input, same bytes."""
    lays = layouts(fleet, plan)  # port clashes and impossible sizings raise here, before any output
    if target == "k8s":
        files = render_k8s(fleet, plan, lays)
    else:
        files = {}
        for lay in lays:
            files.update(_node_files(fleet, plan, lay, secrets or {}, lays))
        files["README.md"] = template(
            "README.md.j2", fleet=fleet, target=target, nodes=[n.name for n in fleet.nodes]
        )
    files["plan.md"] = to_markdown(plan)
    return dict(sorted(files.items()))


def _nvidia(lay: NodeLayout) -> bool:
    return (
        any(u.gpu_ids or u.jetson for u in lay.engines)
        or lay.runs("dcgm-exporter")
        or (lay.runs("wave-exporter") and any(node_nvidia(lay.node)))
    )


def _lxc_guests(host: str, lays: list[NodeLayout]) -> list[dict[str, Any]]:
    """The fleet's LXC guests of Proxmox host `host`, and whether each got GPU passthrough files."""
    return [
        {"name": g.node.name, "vmid": g.node.lxc.vmid, "gpu": _nvidia(g)}
        for g in sorted(lays, key=lambda g: g.node.lxc.vmid if g.node.lxc else 0)
        if g.node.lxc and g.node.lxc.host == host
    ]


def _node_files(
    fleet: Fleet, plan: Plan, lay: NodeLayout, secrets: Mapping[str, str], lays: list[NodeLayout]
) -> dict[str, str]:
    node = lay.node
    root = node.name
    files: dict[str, str] = {}
    nvidia = _nvidia(lay)
    compose = compose_file(lay, fleet)
    if compose["services"] and node.os == "linux":
        files[f"{root}/docker-compose.yml"] = "# Written by `wave render`; see README.md.\n" + to_yaml(
            compose
        )
        wanted = node_secrets(fleet, lay)
        files[f"{root}/.env"] = env_text(wanted, secrets, example=False)
        files[f"{root}/.env.example"] = env_text(wanted, secrets, example=True)
    server_name = fleet.node(root).address if root else "localhost"
    if lay.runs("nginx"):
        gw_local = lay.runs("wave-gateway")
        gw_node = fleet.node(fleet.gateway.node) if fleet.gateway.node else node
        upstream = (
            f"127.0.0.1:{fleet.gateway.port}" if gw_local else f"{gw_node.address}:{fleet.gateway.port}"
        )
        g = fleet.gateway
        files[f"{root}/nginx/wave.conf"] = template(
            "nginx-site.conf.j2",
            node=root,
            upstream=upstream,
            server_name=server_name,
            max_body_bytes=g.max_body_bytes,
            max_connections_per_client=g.max_connections_per_client,
            connect_timeout_s=int(g.connect_timeout_s),
            total_timeout_s=int(g.total_timeout_s),
        )
    if lay.runs("prometheus"):
        files[f"{root}/prometheus/prometheus.yml"] = to_yaml(prometheus_config(fleet, plan, root))
        files[f"{root}/prometheus/alerts.yml"] = to_yaml(alert_rules())
    if lay.runs("grafana"):
        for path, doc in grafana_files(lay.runs("loki")).items():
            files[f"{root}/{path}"] = to_yaml(doc)
        for key in ("fleet", "engines", "gateway"):
            files[f"{root}/grafana/dashboards/{key}.json"] = dashboard_json(key)
    if lay.runs("wave-gateway"):
        files[f"{root}/wave/wave.yaml"] = gateway_config(
            fleet, proxy_networks=DOCKER_BRIDGES if lay.runs("nginx") else ()
        )
    if lay.runs("wave-gateway") or lay.runs("wave-exporter"):
        port = fleet.gateway.port if lay.runs("wave-gateway") else exporter_port()
        files[f"{root}/wave/Dockerfile"] = template("gateway.Dockerfile.j2", node=root, port=port)
    if lay.runs("vault"):
        files[f"{root}/vault/config.hcl"] = template("vault.hcl.j2", node=root)
    lxc_gpu = bool(node.lxc and nvidia)
    if node.lxc and lxc_gpu:
        indices = sorted({i for u in lay.engines for i in u.gpu_ids}) or ["0"]
        values = {"vmid": node.lxc.vmid, "host": node.lxc.host, "node": root, "gpu_indices": indices}
        files[f"{root}/proxmox/lxc-{node.lxc.vmid}.conf"] = template("lxc-gpu.conf.j2", **values)
        files[f"{root}/proxmox/lxc-{node.lxc.vmid}-uvm.sh"] = template("lxc-uvm.sh.j2", **values)
    rendered_backends = {u.backend.name for u in lay.engines}
    decisions = plan.on_node(root, up_to="could")
    files[f"{root}/README.md"] = template(
        "node-README.md.j2",
        node=node,
        fleet=fleet,
        plan=plan,
        decisions=decisions,
        engines=lay.engines,
        external=[b for b in node.backends if b.name not in rendered_backends],
        not_rendered=[d for d in decisions if d.service in lay.not_rendered],
        optional=[d for d in decisions if d.priority == "could"],
        os=node.os,
        compose=f"{root}/docker-compose.yml" in files,
        guests=_lxc_guests(root, lays),
        nvidia=nvidia,
        lxc_gpu=lxc_gpu,
        nginx=lay.runs("nginx"),
        gateway=lay.runs("wave-gateway"),
        prometheus=lay.runs("prometheus"),
        server_name=server_name,
        gateway_port=fleet.gateway.port,
        models_dir=models_dir(node),
    )
    return files
