"""Which services each node runs, by the plan, and which host ports they take (clashes are errors)."""

from __future__ import annotations

from dataclasses import dataclass

from waveidp.catalog.services import service
from waveidp.fleet.models import Fleet, Node
from waveidp.plan import Plan
from waveidp.render._data import containers
from waveidp.render._engines import EngineUnit, engine_units
from waveidp.render._errors import RenderError

# infrastructure services Wave writes containers for (the rest get a README note)
RENDERED_INFRA = (
    "wave-gateway",
    "nginx",
    "prometheus",
    "grafana",
    "loki",
    "redis",
    "vault",
    "dcgm-exporter",
    "wave-exporter",
    "mlflow",
    "n8n",
)


@dataclass(frozen=True)
class NodeLayout:
    node: Node
    engines: tuple[EngineUnit, ...]
    infra: tuple[str, ...]
    not_rendered: tuple[str, ...]
    ports: dict[int, str]

    def runs(self, sid: str) -> bool:
        return sid in self.infra


def gateway_node(fleet: Fleet, plan: Plan) -> str | None:
    placed = [d.node for d in plan.must + plan.should if d.service == "wave-gateway"]
    return placed[0] if placed else fleet.gateway.node


def infra_ports(sid: str, fleet: Fleet) -> list[int]:
    if sid == "wave-gateway":
        return [fleet.gateway.port]
    if containers().get(sid, {}).get("publish", True) is False:
        return []
    return list(service(sid).deploy.ports.values())


def layout(fleet: Fleet, plan: Plan, node: Node) -> NodeLayout:
    engines = tuple(engine_units(fleet, node))
    infra: list[str] = []
    skipped: list[str] = []
    for d in plan.on_node(node.name):
        if d.service in RENDERED_INFRA:
            infra.append(d.service)
        elif service(d.service).deploy.kind not in ("engine",):
            skipped.append(d.service)
    ports: dict[int, str] = {}
    claims = [(u.host_port, f"backend {u.backend.name}") for u in engines]
    claims += [(p, f"service {sid}") for sid in infra for p in infra_ports(sid, fleet)]
    for port, owner in claims:
        if port in ports:
            raise RenderError(
                f"host port {port} is used by both {ports[port]} and {owner}",
                where=f"node {node.name}",
                fix="give one of them another `port:` in the fleet file",
            )
        ports[port] = owner
    return NodeLayout(node, engines, tuple(infra), tuple(skipped), ports)
