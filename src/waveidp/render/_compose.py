"""docker-compose.yml per node: engines from the fleet, infrastructure from the plan."""

from __future__ import annotations

from typing import Any

from waveidp.catalog.services import service
from waveidp.fleet.models import Fleet
from waveidp.render._data import containers
from waveidp.render._engines import EngineUnit, key_env, models_dir
from waveidp.render._exporter import compose_exporter
from waveidp.render._gateway import (
    CONFIG_PATH,
    HOME,
    backend_key_envs,
    gateway_settings,
    serve_command,
    status_key_envs,
)
from waveidp.render._layout import NodeLayout

RESTART = "unless-stopped"


def _gpu(ids: tuple[str, ...] | None) -> dict[str, Any]:
    device: dict[str, Any] = {"driver": "nvidia", "capabilities": ["gpu"]}
    if ids:
        device["device_ids"] = list(ids)
    else:
        device["count"] = "all"
    return {"resources": {"reservations": {"devices": [device]}}}


def _health(test: list[str]) -> dict[str, Any]:
    return {"test": test, "interval": "30s", "timeout": "10s", "retries": 5, "start_period": "60s"}


def _engine(u: EngineUnit) -> dict[str, Any]:
    body: dict[str, Any] = {"image": u.image, "restart": RESTART}
    if u.jetson:
        body["runtime"] = "nvidia"
        body["entrypoint"] = ["llama-server"]
    body["command"] = list(u.command)
    if u.environment:
        body["environment"] = dict(u.environment)
    body["ports"] = [f"{u.host_port}:{u.container_port}"]
    body["volumes"] = [f"${{WAVE_MODELS_DIR:-{models_dir(u.node)}}}:/models:ro"]
    if u.service == "vllm":
        body["volumes"].append("hf-cache:/root/.cache/huggingface")
        body["ipc"] = "host"
        probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{u.container_port}{u.health_path}')"
        body["healthcheck"] = _health(["CMD", "python3", "-c", probe])
    else:
        body["healthcheck"] = _health(
            ["CMD", "curl", "-fsS", f"http://localhost:{u.container_port}{u.health_path}"]
        )
    if u.gpu_ids:
        body["deploy"] = _gpu(u.gpu_ids)
    return body


def _infra(sid: str, lay: NodeLayout, fleet: Fleet, gateway_local: bool) -> dict[str, Any]:
    svc = service(sid)
    spec = containers().get(sid, {})
    body: dict[str, Any] = {"image": svc.deploy.image, "restart": RESTART}
    if sid == "wave-gateway":
        return _gateway(lay, fleet)
    if sid == "wave-exporter":
        return compose_exporter(lay.node, lay.runs("dcgm-exporter"), RESTART, _gpu(None))
    if sid == "nginx":
        body["network_mode"] = "host"  # reaches the gateway on 127.0.0.1 and keeps client addresses
        body["volumes"] = [
            "./nginx/wave.conf:/etc/nginx/conf.d/default.conf:ro",
            "./nginx/tls:/etc/nginx/tls:ro",
        ]
        body["healthcheck"] = _health(["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/healthz"])
        body["depends_on"] = ["wave-gateway"] if gateway_local else []
        if not body["depends_on"]:
            del body["depends_on"]
        return body
    if sid == "prometheus":
        keys = [key_env(b) for _, b in fleet.backends() if b.engine in ("vllm", "llamacpp", "triton")]
        keys += status_key_envs(fleet)
        # Prometheus reads bearer tokens only from files: copy the config next to a keys/ folder
        # written from the environment at start, so no secret lands in a rendered file.
        script = "mkdir -p /prometheus/config/keys && cp /etc/prometheus/*.yml /prometheus/config/"
        for name in sorted(set(keys)):
            script += f' && printf %s "$${name}" > /prometheus/config/keys/{name}'
        body["entrypoint"] = ["/bin/sh", "-c", script + ' && exec /bin/prometheus "$$@"', "prometheus"]
        body["environment"] = {name: "${" + name + "}" for name in sorted(set(keys))}
    for key in ("command", "volumes"):
        if key in spec:
            body[key] = list(spec[key])
    if "environment" in spec:
        body.setdefault("environment", {}).update(spec["environment"])
    if spec.get("cap_add"):
        body["cap_add"] = list(spec["cap_add"])
    if spec.get("publish", True):
        bind = spec.get("bind")
        body["ports"] = [f"{bind + ':' if bind else ''}{p}:{p}" for p in svc.deploy.ports.values()]
    if spec.get("health"):
        body["healthcheck"] = _health(list(spec["health"]))
    if spec.get("gpu"):
        body["deploy"] = _gpu(None)
    if sid == "grafana" and lay.runs("prometheus"):
        body["depends_on"] = ["prometheus"]
    return body


def _gateway(lay: NodeLayout, fleet: Fleet) -> dict[str, Any]:
    port = fleet.gateway.port
    bind = "127.0.0.1:" if lay.runs("nginx") else ""
    env = {
        name: "${" + name + "}"
        for name in [*backend_key_envs(fleet), "WAVE_ADMIN_KEY", *status_key_envs(fleet)]
    }
    redis = "redis://:${REDIS_PASSWORD}@redis:6379/0" if lay.runs("redis") else None
    # one gateway service on one node: keys and the audit log stay in SQLite in its volume
    env.update(gateway_settings(redis_url=redis, database_url=None))
    probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{port}/health')"
    body: dict[str, Any] = {
        "build": {"context": "./wave"},
        "image": "waveidp/gateway:local",
        "restart": RESTART,
        "command": serve_command(),
        "environment": dict(sorted(env.items())),
        "volumes": [f"./wave/wave.yaml:{CONFIG_PATH}:ro", f"wave-data:{HOME}"],
        "ports": [f"{bind}{port}:{port}"],
        "healthcheck": _health(["CMD", "python", "-c", probe]),
    }
    if lay.runs("redis"):
        body["depends_on"] = ["redis"]
    return body


def compose_file(lay: NodeLayout, fleet: Fleet) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for u in lay.engines:
        services[u.backend.name] = _engine(u)
    gateway_local = lay.runs("wave-gateway")
    for sid in lay.infra:
        services[sid] = _infra(sid, lay, fleet, gateway_local)
    volumes: dict[str, Any] = {}
    for body in services.values():
        for v in body.get("volumes", []):
            name = v.split(":", 1)[0]
            if not name.startswith(("./", "/", "$")):
                volumes[name] = {}
    doc: dict[str, Any] = {"services": services}
    if volumes:
        doc["volumes"] = dict(sorted(volumes.items()))
    return doc
