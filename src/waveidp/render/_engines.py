"""Engine containers from fleet backends, with flags taken from sizing (never typed by hand)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from waveidp.catalog._models import Hardware
from waveidp.catalog.services import service
from waveidp.fleet.models import Backend, Fleet, Node
from waveidp.render._data import defaults
from waveidp.render._errors import RenderError

# fleet `engine` value -> service catalog id of the engines Wave renders containers for
RENDERED_ENGINES = {"vllm": "vllm", "llamacpp": "llamacpp", "triton": "triton"}


@dataclass(frozen=True)
class EngineUnit:
    node: Node
    backend: Backend
    service: str
    image: str
    command: tuple[str, ...]
    environment: dict[str, str]
    container_port: int
    host_port: int
    gpu_ids: tuple[str, ...]
    jetson: bool
    health_path: str
    key_env: str
    model_path: str
    flags: dict[str, str | int | float] = field(default_factory=dict)
    summary: str = ""


def key_env(backend: Backend) -> str:
    """The environment variable holding a backend's API key (the fleet's, else a generated name)."""
    return backend.api_key_env or "WAVE_BACKEND_KEY_" + re.sub(r"[^A-Z0-9]", "_", backend.name.upper())


def host_port(backend: Backend, default: int) -> int:
    if backend.port:
        return backend.port
    return urlparse(backend.url).port or default


def _hardware(node: Node, backend: Backend, engine: str) -> tuple[list[Hardware], tuple[str, ...], bool]:
    from waveidp.fleet import device_hardware

    wanted = backend.devices or [d.id for d in node.devices]
    out: list[Hardware] = []
    gpu_ids: list[str] = []
    jetson = False
    index = 0
    for dev in node.devices:
        hw = device_hardware(dev, node)
        nvidia = hw.kind in ("gpu", "soc") and "nvidia" in hw.vendor.lower()
        ids = [str(index + i) for i in range(dev.count)] if nvidia and hw.kind == "gpu" else []
        if nvidia and hw.kind == "gpu":
            index += dev.count
        if dev.id not in wanted:
            continue
        if engine == "vllm" and hw.kind == "cpu":
            continue  # vLLM does not offload to the host; the CPU only matters to llama.cpp
        out.extend([hw] * (dev.count if hw.kind != "cpu" else 1))
        gpu_ids.extend(ids)
        jetson = jetson or (nvidia and hw.kind == "soc")
    return out, tuple(gpu_ids), jetson


def engine_units(fleet: Fleet, node: Node) -> list[EngineUnit]:
    return [_unit(node, b) for b in node.backends if b.engine in RENDERED_ENGINES]


def _unit(node: Node, b: Backend) -> EngineUnit:
    sid = RENDERED_ENGINES[b.engine]
    svc = service(sid)
    cport = next(iter(svc.deploy.ports.values()))
    hport = host_port(b, cport)
    hardware, gpu_ids, jetson = _hardware(node, b, b.engine)
    served = b.served()
    where = f"node {node.name}, backend {b.name}"
    if len(served) != 1:
        raise RenderError(
            f"{b.engine} serves one model per process and the backend lists {len(served)}",
            where=where,
            fix="give each model its own backend (and port)",
        )
    m = served[0]
    env_name = key_env(b)
    image = svc.deploy.image or ""
    if b.engine == "llamacpp":
        image = svc.deploy.images["jetson"] if jetson else svc.deploy.images["cuda"] if gpu_ids else image
    health = svc.deploy.health or "/health"
    command: tuple[str, ...]
    if b.engine == "triton":
        command = (
            "tritonserver",
            "--model-repository=/models/triton",
            "--http-port=8000",
            "--grpc-port=8001",
            "--metrics-port=8002",
        )
        return EngineUnit(
            node, b, sid, image, command, {}, cport, hport, gpu_ids, jetson, health, env_name, "triton"
        )
    if not m.model:
        raise RenderError(
            f"model '{m.name}' has no `model:` catalog id, so its engine flags cannot be sized",
            where=where,
            fix="add `model:` (and `quant:`) to the served model",
        )
    flags, summary = size_flags(node, b, m.model, m.quant, m.context, hardware)
    model_path = stored_path(m.model) or f"{m.model}-{m.quant or 'default'}"
    if b.engine == "vllm":
        command = (
            "--model",
            f"/models/{model_path}",
            "--served-model-name",
            m.name,
            "--host",
            "0.0.0.0",
            "--port",
            str(cport),
        )
        env = {"VLLM_API_KEY": "${" + env_name + "}"}
    else:
        model_path += "" if model_path.endswith(".gguf") else ".gguf"
        command = (
            "-m",
            f"/models/{model_path}",
            "--alias",
            m.name,
            "--host",
            "0.0.0.0",
            "--port",
            str(cport),
            "--metrics",
        )
        env = {"LLAMA_API_KEY": "${" + env_name + "}"}
    for flag, value in flags.items():
        command += (flag, str(value))
    return EngineUnit(
        node,
        b,
        sid,
        image,
        command,
        env,
        cport,
        hport,
        gpu_ids,
        jetson,
        health,
        env_name,
        model_path,
        flags,
        summary,
    )


def models_dir(node: Node) -> str:
    """Where the node keeps its models (its model store), mounted into engines at /models."""
    return node.models_dir or defaults().engines.models_dir


def stored_path(model: str) -> str | None:
    """`NAME/FILE` of a model of the local store (`wave models list`), the same path it has under
    a node's `models_dir` once the store folder is copied there (or pulled there with `wave models
    pull`); None for a catalog id."""
    from waveidp.models import ModelStore

    store = ModelStore(create=False)
    if not store.has(model):
        return None
    return f"{model}/{store.get(model).manifest.weights}"


def size_flags(
    node: Node, b: Backend, model: str, quant: str | None, context: int | None, hardware: list[Hardware]
) -> tuple[dict[str, str | int | float], str]:
    """Engine flags from `waveidp.sizing`; a deployment that cannot fit is an error with the arithmetic."""
    from waveidp import catalog
    from waveidp.sizing import Deployment, SizingRequest, estimate

    d = defaults().engines
    spec = catalog.model(model)
    ctx = context or min(d.context, spec.max_context)
    conc = b.max_concurrency or d.concurrency.get(b.engine, 1)
    kw: dict[str, object] = {"context": ctx}
    if b.engine == "vllm":
        kw["gpu_memory_utilization"] = d.gpu_memory_utilization
        kw["tp"] = b.tensor_parallel
    else:
        kw["parallel"] = conc
    where = f"node {node.name}, backend {b.name}"
    if not hardware:
        raise RenderError(
            f"{b.engine} has no device to run on",
            where=where,
            fix="list the node's GPU in the backend's `devices:`",
        )
    dep = Deployment.build(model, quant, hardware, b.engine, **kw)
    result = estimate(
        SizingRequest(
            deployment=dep,
            prompt_tokens=min(d.prompt_tokens, ctx // 2),
            output_tokens=min(d.output_tokens, ctx // 4),
            concurrency=conc,
        )
    )
    arithmetic = "; ".join(r for r in result.reasons if not r.startswith("decode is"))
    if result.verdict == "impossible":
        raise RenderError(
            f"model {model} ({dep.quant.id}, context {ctx}) does not fit: {arithmetic}",
            where=where,
            fix="use a smaller quant or context, or another device; `wave fit` lists what fits",
        )
    summary = f"{result.verdict}: {arithmetic}"
    return dict(result.engine_flags), summary
