"""Turn a fleet file or a list of `--upstream` URLs into the gateway's backend states."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import httpx

from waveidp.catalog import Hardware
from waveidp.engines import EngineAdapter, adapter, detect
from waveidp.errors import ConfigError, WaveError
from waveidp.fleet import gpu_indices
from waveidp.fleet.hardware import device_hardware
from waveidp.fleet.models import Backend, Fleet, Node
from waveidp.gateway.backends import BackendState
from waveidp.gateway.prediction import Prediction, from_sizing
from waveidp.gateway.telemetry import NodeTelemetry


def api_root(url: str) -> str:
    """`http://h:8000/v1/` -> `http://h:8000` (the gateway appends `/v1/...` itself)."""
    root = url.rstrip("/")
    return root[:-3] if root.endswith("/v1") else root


def backend_key(b: Backend) -> str | None:
    where = f"backend {b.name}"
    if b.api_key_env:
        value = os.environ.get(b.api_key_env)
        if not value:
            raise ConfigError(
                f"environment variable {b.api_key_env} is not set",
                where=where,
                fix=f"export {b.api_key_env}=<the backend's key> or remove api_key_env",
            )
        return value
    if b.api_key_file:
        path = Path(b.api_key_file).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read api_key_file {path}: {exc.strerror}", where=where) from None
    if b.api_key_vault:
        from waveidp.security.secrets import read_vault_secret

        return read_vault_secret(b.api_key_vault, what=f"API key of backend {b.name}").reveal()
    return None


def _backend_hardware(node: Node, b: Backend) -> list[Hardware] | list[str]:
    """The backend's devices as sizing sees them (detected description, calibration), or their
    catalog ids when one is unknown, which `from_sizing` then logs."""
    by_id = {d.id: d for d in node.devices}
    used = [by_id[d] for d in b.devices if d in by_id for _ in range(by_id[d].count)]
    try:
        return [device_hardware(d, node) for d in used]
    except WaveError:
        return [d.hardware for d in used]


def backend_from_fleet(node: Node, b: Backend) -> BackendState:
    devices = _backend_hardware(node, b)
    engine = "llamacpp" if b.engine == "embedded" else b.engine
    served = b.served()
    predictions: dict[str, Prediction] = {}
    for m in served:
        p = from_sizing(m.model, m.quant, devices, engine, b.max_concurrency)
        if p is not None:
            predictions[m.name] = p
    kind = adapter(b.engine)
    if b.routes is not None:
        kind = dataclasses.replace(kind, routes=frozenset(b.routes))
    return BackendState(
        name=b.name,
        root=api_root(b.url),
        adapter=kind,
        models={m.name for m in served},
        discover_models=not served,
        api_key=backend_key(b),
        max_concurrency=b.max_concurrency,
        predictions=predictions,
        node=node.name,
        gpus=gpu_indices(node, b),
    )


def backends_from_fleet(fleet: Fleet) -> list[BackendState]:
    return [backend_from_fleet(n, b) for n, b in fleet.backends()]


def telemetry_from_fleet(fleet: Fleet, local: str | None = None) -> list[NodeTelemetry]:
    """A `NodeTelemetry` for each node with `exporter:` URLs, and for `local`, the node whose own
    collector the gateway runs (`wave up`; its exporters, if any, are not scraped: no HTTP hop to
    read what this process can read itself). `local` need not be a node of the file."""
    out = [NodeTelemetry(n.name, tuple(n.exporter)) for n in fleet.nodes if n.exporter and n.name != local]
    if local is not None:
        out.append(NodeTelemetry(local, local=True))
    return out


def backends_from_urls(
    urls: Sequence[str], engine: str = "auto", api_key: str | None = None
) -> list[BackendState]:
    """Backends for `--upstream URL`: models come from each one's `/v1/models`, the engine kind from
    its `/metrics` when `engine` is `auto`."""
    out = []
    for i, url in enumerate(urls):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"upstream '{url}' is not an http(s) URL",
                where="--upstream",
                fix="give a base URL such as http://127.0.0.1:8000",
            )
        root = api_root(url)
        kind = _detect(root) if engine == "auto" else adapter(engine)
        out.append(
            BackendState(name=f"upstream{i}", root=root, adapter=kind, discover_models=True, api_key=api_key)
        )
    return out


def _detect(root: str) -> EngineAdapter:
    try:
        r = httpx.get(root + "/metrics", timeout=1.0)
    except httpx.HTTPError:
        return adapter("openai")
    return detect(r.text) if r.status_code == 200 else adapter("openai")
