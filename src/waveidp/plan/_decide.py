"""The MoSCoW rules: pure functions from (fleet, profile, goals, licences) to a Plan."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from waveidp.catalog import GENERIC_CPU, GENERIC_GPU
from waveidp.catalog.services import Service, services
from waveidp.errors import ConfigError, NotFoundError
from waveidp.fleet.models import Fleet
from waveidp.plan._facts import Gpu, HardwareLookup, NodeFacts, node_facts, parse_cc
from waveidp.plan._models import PRIORITIES, Decision, Plan, Priority, Profile, rank
from waveidp.plan._rules import Rules, ServiceRule, rules

SERVICE_ROLES = ("services", "gateway", "observ", "infra")


def make_plan(
    fleet: Fleet,
    *,
    profile: Profile = "single-user",
    goals: Iterable[str] = (),
    licences: Iterable[str] = (),
    lookup: HardwareLookup | None = None,
    catalog: Mapping[str, Service] | None = None,
    measured_hardware: Iterable[str] = (),
) -> Plan:
    """Decide Must/Should/Could/Won't and a node for every catalog service."""
    if lookup is None:
        from waveidp.catalog import hardware

        lookup = hardware
    table = rules()
    catalog = dict(catalog or services())
    missing = sorted(set(catalog) - set(table.services))
    if missing:
        raise ConfigError(f"services without a plan rule: {', '.join(missing)}", where="plan/rules.yaml")
    chosen = _goals(goals, table)
    held = tuple(sorted(set(licences)))
    for lic in held:
        if lic not in catalog:
            raise NotFoundError("licence (service id)", lic, catalog)
    for node in fleet.nodes:
        for sid in node.services:
            if sid not in catalog:
                raise NotFoundError("service", sid, catalog, where=f"node {node.name} services")
    facts = node_facts(fleet, lookup, table)
    ctx = _Context(fleet, profile, chosen, held, facts, catalog, table)
    decided: dict[str, list[Decision]] = {}
    for sid in _dependency_order(catalog):
        decided[sid] = ctx.decide(catalog[sid], table.services[sid], decided)
    plan = Plan(fleet=fleet.name, profile=profile, goals=chosen, licences=held)
    for sid in catalog:
        for d in decided[sid]:
            getattr(plan, d.priority).append(d)
    plan.uncertainties.extend(_fleet_uncertainties(plan, facts, set(measured_hardware)))
    return plan


def _goals(goals: Iterable[str], table: Rules) -> tuple[str, ...]:
    out = list(table.default_goals)
    for g in goals:
        if g not in table.goals:
            raise NotFoundError("goal", g, table.goals)
        if g not in out:
            out.append(g)
    return tuple(out)


def _dependency_order(catalog: Mapping[str, Service]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(sid: str, stack: tuple[str, ...]) -> None:
        if sid in seen:
            return
        if sid in stack:
            raise ConfigError(f"dependency cycle: {' -> '.join((*stack, sid))}", where="services.yaml")
        for dep in catalog[sid].depends_on:
            visit(dep, (*stack, sid))
        seen.add(sid)
        order.append(sid)

    for sid in catalog:
        visit(sid, ())
    return order


def unmet(svc: Service, f: NodeFacts, rules_: Rules | None = None) -> str | None:
    """Why `svc` cannot run on the node, or None when the node meets every requirement."""
    req, node = svc.requires, f.node
    if node.os not in req.os:
        return f"{node.name} runs {node.os} and {svc.name} needs {'/'.join(req.os)}"
    if f.arch not in req.cpu_arch:
        return f"{node.name} is {f.arch} and {svc.name} needs {'/'.join(req.cpu_arch)}"
    if req.kubernetes and not node.kubernetes:
        return f"{svc.name} needs Kubernetes and {node.name} does not run it"
    if req.gpu == "intel" and not f.intel_accel:
        return f"{svc.name} needs an Intel NPU or GPU and {node.name} has none"
    if req.gpu == "any" and not (f.nvidia or f.intel_accel):
        return f"{svc.name} needs a GPU and {node.name} has none"
    if req.gpu != "nvidia":
        return None
    if not f.nvidia:
        return f"{svc.name} needs an NVIDIA GPU and {node.name} has none"
    problems = [_gpu_problem(svc, g) for g in f.nvidia]
    if any(p is None for p in problems):
        return None
    return f"{problems[0]} on {node.name}"


def _gpu_problem(svc: Service, gpu: Gpu) -> str | None:
    req, hw = svc.requires, gpu.hardware
    if req.gpu_classes and not (gpu.classes & set(req.gpu_classes)):
        kind = "/".join(sorted(gpu.classes)) or "unclassified"
        return f"{svc.name} supports only {'/'.join(req.gpu_classes)} GPUs, not the {hw.name} ({kind})"
    need = parse_cc(req.min_compute_capability)
    if need and (gpu.cc is None or gpu.cc < need):
        have = hw.compute_capability or "unknown"
        need_text = req.min_compute_capability
        return f"{svc.name} needs compute capability >= {need_text} and the {hw.name} has {have}"
    if req.min_gpu_memory_gib and gpu.memory_gib < req.min_gpu_memory_gib:
        return (
            f"{svc.name} needs >= {req.min_gpu_memory_gib:g} GiB of GPU memory and the {hw.name} "
            f"has {gpu.memory_gib:.1f} GiB"
        )
    return None


class _Context:
    def __init__(
        self,
        fleet: Fleet,
        profile: Profile,
        goals: tuple[str, ...],
        licences: tuple[str, ...],
        facts: list[NodeFacts],
        catalog: Mapping[str, Service],
        table: Rules,
    ) -> None:
        self.fleet, self.profile, self.goals, self.licences = fleet, profile, goals, licences
        self.facts, self.catalog, self.table = facts, catalog, table
        self.by_name = {f.name: f for f in facts}
        self.services_node = _services_node(fleet, facts)

    def decide(
        self, svc: Service, rule: ServiceRule, decided: Mapping[str, list[Decision]]
    ) -> list[Decision]:
        declared = self._declared(rule)
        pinned = [f for f in self.facts if svc.id in f.node.services]
        priority = rule.priority[self.profile]
        for goal, boost in rule.goals.items():
            if goal in self.goals and rank(boost) < rank(priority):
                priority = boost
        why = rule.why
        if declared:
            priority, why = "must", f"the fleet file runs it on this node, and {why}"
        elif pinned:
            priority = min(priority, "should", key=rank) if priority != "wont" else "should"
            why = f"the fleet file pins it to this node, and {why}"
        elif rule.only_for_goals and not set(rule.only_for_goals) & set(self.goals):
            return [
                self._d(
                    svc,
                    rule,
                    "wont",
                    None,
                    f"{_cap(why)} (add --goal {rule.only_for_goals[0]} to reconsider).",
                )
            ]
        if svc.licence.cost == "paid" and svc.id not in self.licences:
            capped = rule.without_licence or "wont"
            if rank(capped) > rank(priority):
                note = f"its licence is paid and not held (pass --licence {svc.id} if you hold one)"
                if capped == "wont":
                    return [self._d(svc, rule, "wont", None, f"{_cap(note)}; {why}.")]
                priority, why = capped, f"{why}, but {note}"
        if priority == "wont":
            return [
                self._d(
                    svc, rule, "wont", None, f"{_cap(why)}, so it is not needed for a {self.profile} fleet."
                )
            ]
        targets = declared or pinned or self._targets(svc, rule)
        if not targets:
            return [self._d(svc, rule, "wont", None, self._nowhere(svc, rule))]
        out: list[Decision] = []
        for f in targets:
            problem = unmet(svc, f)
            if problem is None:
                problem = self._missing_dependency(svc, f.name, decided)
            if problem is not None:
                out.append(self._d(svc, rule, "wont", f.name, self._wont_here(svc, rule, f, problem)))
                continue
            out.append(self._d(svc, rule, priority, f.name, f"{_cap(why)}.", self._uncertain(svc, rule, f)))
        return out

    def _declared(self, rule: ServiceRule) -> list[NodeFacts]:
        if rule.placement != "backends" or not rule.engine:
            return []
        return [f for f in self.facts if any(b.engine == rule.engine for b in f.node.backends)]

    def _targets(self, svc: Service, rule: ServiceRule) -> list[NodeFacts]:
        ok = [f for f in self.facts if unmet(svc, f) is None]
        if rule.placement == "every-node":
            if svc.requires.gpu == "nvidia":
                return [f for f in self.facts if f.nvidia]
            return list(self.facts)
        if rule.placement == "services-node":
            return [self.services_node] if self.services_node else []
        if rule.placement == "intel-node":
            return [f for f in self.facts if f.intel_accel]
        if rule.placement == "cluster":
            return [f for f in ok if f.node.kubernetes][:1]
        best = sorted(ok, key=lambda f: (-f.max_gpu_gib, -(f.node.memory_gib or 0), f.name))
        return best[:1]

    def _nowhere(self, svc: Service, rule: ServiceRule) -> str:
        relevant = [f for f in self.facts if f.nvidia] if svc.requires.gpu == "nvidia" else self.facts
        problems = [p for f in (relevant or self.facts) if (p := unmet(svc, f))]
        if problems:
            return f"No node can run it: {problems[0]}."
        return f"No node suits its placement ({rule.placement}) in this fleet."

    def _wont_here(self, svc: Service, rule: ServiceRule, f: NodeFacts, problem: str) -> str:
        text = _cap(problem)
        if rule.instead:
            alt = self.catalog[rule.instead]
            text += (
                f"; {alt.name} covers it instead"
                if unmet(alt, f) is None
                else f"; no other catalog exporter supports the {f.describe_gpus()} either"
            )
        return text + "."

    def _missing_dependency(
        self, svc: Service, node: str, decided: Mapping[str, list[Decision]]
    ) -> str | None:
        for dep in svc.depends_on:
            placed = [d for d in decided.get(dep, []) if d.priority != "wont"]
            if not placed:
                return f"it needs {self.catalog[dep].name}, which the plan does not include"
            if self.catalog[dep].requires.gpu != "none" and not any(d.node == node for d in placed):
                return f"it needs {self.catalog[dep].name} on {node}, which the plan does not place there"
        return None

    def _uncertain(self, svc: Service, rule: ServiceRule, f: NodeFacts) -> tuple[str, ...]:
        out = []
        for u in rule.uncertainties:
            w = u.when
            hit = w.always
            need = parse_cc(w.min_compute_capability)
            hit = hit or bool(need and any(g.cc and g.cc >= need for g in f.nvidia))
            hit = hit or bool(w.hardware_class and any(w.hardware_class in g.classes for g in f.nvidia))
            hit = hit or (w.profile == self.profile)
            if hit:
                out.append(u.text)
        if svc.licence.cost != "free" and svc.licence.note and not any("licen" in t.lower() for t in out):
            out.append(f"licence: {svc.licence.note}")
        return tuple(out)

    def _d(
        self,
        svc: Service,
        rule: ServiceRule,
        priority: Priority,
        node: str | None,
        reason: str,
        uncertainties: tuple[str, ...] = (),
    ) -> Decision:
        return Decision(
            service=svc.id,
            name=svc.name,
            priority=priority,
            node=node,
            reason=reason,
            category=svc.category,
            licence=svc.licence.name,
            seed=rule.seed,
            uncertainties=uncertainties,
        )


def _services_node(fleet: Fleet, facts: list[NodeFacts]) -> NodeFacts | None:
    if not facts:
        return None
    by_name = {f.name: f for f in facts}
    if fleet.gateway.node:
        return by_name[fleet.gateway.node]
    for f in facts:
        role = (f.node.role or "").lower()
        if any(word in role for word in SERVICE_ROLES):
            return f
    return sorted(facts, key=lambda f: (bool(f.nvidia), -(f.node.memory_gib or 0), f.name))[0]


def _fleet_uncertainties(plan: Plan, facts: list[NodeFacts], measured: set[str]) -> list[str]:
    out = []
    seen: set[str] = set()
    # a device calibrated on its node (`wave calibrate --quick`) is measured, and so is its catalog
    # hardware elsewhere; an unlisted CPU or GPU (one placeholder id for every board) only where it is
    generic = {GENERIC_CPU, GENERIC_GPU}
    measured = measured | {
        d.hardware for f in facts for d in f.node.devices if d.calibration and d.hardware not in generic
    }
    for f in facts:
        for hw in f.hardware:
            if hw.label not in seen and hw.id not in measured and not hw.calibration:
                seen.add(hw.label)
                out.append(
                    f"{hw.name}: no calibration measured on this device yet; its throughput and "
                    "latency figures are predictions (run `wave calibrate --quick` on its node, or "
                    "`wave bench` and `wave calibrate`)"
                )
    exporters = {"dcgm-exporter", "wave-exporter"}
    for f in facts:
        if f.nvidia and not any(d.service in exporters for d in plan.on_node(f.name)):
            out.append(
                f"{f.name}: no GPU exporter supports the {f.describe_gpus()}; its GPU memory and errors "
                "are not in Prometheus"
            )
    return out


def _cap(text: str) -> str:
    if len(text) > 1 and text[1].isupper():  # "vLLM ..." keeps its spelling
        return text
    return text[:1].upper() + text[1:]


__all__ = ["PRIORITIES", "make_plan", "unmet"]
