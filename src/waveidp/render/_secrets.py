"""Which secrets each node's `.env` holds, and the `.env` text (values come from the caller)."""

from __future__ import annotations

import re
import secrets as _secrets
from collections.abc import Mapping
from typing import Literal

from waveidp.fleet.models import Fleet
from waveidp.render._engines import RENDERED_ENGINES, key_env
from waveidp.render._gateway import STATUS_KEY_ENV
from waveidp.render._layout import NodeLayout

Kind = Literal["generated", "user"]
_LINE = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$")


def node_secrets(fleet: Fleet, lay: NodeLayout) -> dict[str, tuple[Kind, str]]:
    """name -> (generated | user, comment) for one node."""
    out: dict[str, tuple[Kind, str]] = {}
    for u in lay.engines:
        out[u.key_env] = ("generated", f"API key of backend {u.backend.name}")
    if lay.runs("wave-gateway") or lay.runs("prometheus"):
        for _, b in fleet.backends():
            if b.engine in RENDERED_ENGINES:
                out[key_env(b)] = ("generated", f"API key of backend {b.name}")
            elif lay.runs("wave-gateway") and b.api_key_env:
                out[b.api_key_env] = ("user", f"API key of external backend {b.name} (set it yourself)")
    if lay.runs("wave-gateway"):
        out["WAVE_ADMIN_KEY"] = ("generated", "admin key of the gateway's /admin API and web console")
    if fleet.gateway.status_auth and (lay.runs("wave-gateway") or lay.runs("prometheus")):
        out[STATUS_KEY_ENV] = ("generated", "key Prometheus reads the gateway's /metrics with (status_auth)")
    if lay.runs("grafana"):
        out["GRAFANA_ADMIN_PASSWORD"] = ("generated", "Grafana admin password (user: admin)")
    if lay.runs("redis"):
        out["REDIS_PASSWORD"] = ("generated", "Redis password shared by the gateway replicas")
    if lay.runs("n8n"):
        out["N8N_ENCRYPTION_KEY"] = ("generated", "n8n credential encryption key")
    return dict(sorted(out.items()))


def env_text(wanted: Mapping[str, tuple[Kind, str]], values: Mapping[str, str], *, example: bool) -> str:
    head = (
        "# Copy to .env and fill in; `wave render` generates .env itself (mode 0600).\n"
        if example
        else "# Secrets of this node, made by `wave render`, kept on re-render. Mode 0600; never commit.\n"
    )
    lines = [head.rstrip("\n")]
    for name, (_, comment) in wanted.items():
        lines.append(f"# {comment}")
        lines.append(f"{name}=" + ("" if example else values.get(name, "")))
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def fill(wanted: Mapping[str, Kind], existing: Mapping[str, str]) -> dict[str, str]:
    """Keep every existing value; generate the missing generated ones (user ones stay empty)."""
    out = {}
    for name, kind in wanted.items():
        if existing.get(name):
            out[name] = existing[name]
        else:
            out[name] = _secrets.token_urlsafe(32) if kind == "generated" else ""
    return out
