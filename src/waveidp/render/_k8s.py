"""Kubernetes manifests: engines as Deployments pinned to their node with `nvidia.com/gpu` limits,
the gateway as a stateless Deployment behind a Service with Redis for shared state, PodMonitors and a
PrometheusRule for the Prometheus Operator. Secrets are referenced by name, never rendered."""

from __future__ import annotations

from typing import Any

import yaml

from waveidp.fleet.models import Fleet
from waveidp.plan import Plan
from waveidp.render._engines import EngineUnit
from waveidp.render._gateway import backend_key_envs, gateway_config, serve_command, status_key_envs
from waveidp.render._layout import NodeLayout
from waveidp.render._observe import alert_rules

NAMESPACE = "wave"
SECRET = "wave-secrets"
GATEWAY_IMAGE = "waveidp/gateway:0.1.0"
REDIS_IMAGE = "redis:7.2-alpine"
PART_OF = "wave"


def _meta(name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": PART_OF,
        },
    }


def _secret_env(var: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def _probe(path: str, port: str, *, startup: bool = False) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
    }
    if startup:
        probe["failureThreshold"] = 90  # model loading can take 15 minutes
    else:
        probe["failureThreshold"] = 3
    return probe


def _service(name: str, component: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, component),
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _deployment(
    name: str, component: str, replicas: int, pod: dict[str, Any], *, recreate: bool
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, component),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"} if recreate else {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": _meta(name, component)["labels"]}, "spec": pod},
        },
    }


def _engine(u: EngineUnit) -> list[dict[str, Any]]:
    name = u.backend.name
    env_var = next(iter(u.environment), None)
    container: dict[str, Any] = {
        "name": "engine",
        "image": u.image,
        "args": list(u.command),
        "ports": [{"name": "http", "containerPort": u.container_port, "protocol": "TCP"}],
        "env": [_secret_env(env_var, u.key_env)] if env_var else [],
        "startupProbe": _probe(u.health_path, "http", startup=True),
        "readinessProbe": _probe(u.health_path, "http"),
        "livenessProbe": _probe(u.health_path, "http"),
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
    }
    if u.jetson:
        container["command"] = ["llama-server"]
    gpus = len(u.gpu_ids) or (1 if u.jetson else 0)
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    volumes: list[dict[str, Any]] = [
        {"name": "models", "hostPath": {"path": "/srv/models", "type": "Directory"}},
    ]
    if u.service == "vllm":
        container["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}})
    pod = {
        "nodeSelector": {"kubernetes.io/hostname": u.node.name},
        "containers": [container],
        "volumes": volumes,
    }
    return [_deployment(name, "engine", 1, pod, recreate=True), _service(name, "engine", u.container_port)]


def _gateway(fleet: Fleet, engines: list[EngineUnit], redis: bool) -> list[dict[str, Any]]:
    port = fleet.gateway.port
    in_cluster = fleet.model_copy(deep=True)
    by_name = {u.backend.name: u for u in engines}
    for node in in_cluster.nodes:
        for b in node.backends:
            if b.name in by_name:
                b.url = f"http://{b.name}.{NAMESPACE}.svc.cluster.local:{by_name[b.name].container_port}"
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("wave-gateway", "gateway"),
        "data": {"wave.yaml": gateway_config(in_cluster)},
    }
    env = [_secret_env(name, name) for name in backend_key_envs(fleet) + status_key_envs(fleet)]
    if redis:
        env.append(_secret_env("REDIS_PASSWORD", "REDIS_PASSWORD"))
        env.append(
            {"name": "WAVE_REDIS_URL", "value": f"redis://:$(REDIS_PASSWORD)@redis.{NAMESPACE}.svc:6379/0"}
        )
    container = {
        "name": "gateway",
        "image": GATEWAY_IMAGE,
        "args": serve_command(port),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": _probe("/ready", "http"),
        "livenessProbe": _probe("/health", "http"),
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/wave", "readOnly": True},
            {"name": "home", "mountPath": "/var/lib/wave"},
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
        },
    }
    env.append({"name": "WAVE_HOME", "value": "/var/lib/wave"})
    pod = {
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": "wave-gateway"}},
            {"name": "home", "emptyDir": {}},
        ],
    }
    replicas = 2 if redis else 1
    return [
        config,
        _deployment("wave-gateway", "gateway", replicas, pod, recreate=False),
        _service("wave-gateway", "gateway", port),
    ]


def _redis() -> list[dict[str, Any]]:
    container = {
        "name": "redis",
        "image": REDIS_IMAGE,
        "args": ["redis-server", "--requirepass", "$(REDIS_PASSWORD)", "--appendonly", "no"],
        "env": [_secret_env("REDIS_PASSWORD", "REDIS_PASSWORD")],
        "ports": [{"name": "http", "containerPort": 6379, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": 6379}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": 6379}, "periodSeconds": 10},
    }
    return [
        _deployment("redis", "state", 1, {"containers": [container]}, recreate=True),
        _service("redis", "state", 6379),
    ]


def _monitors(engines: list[EngineUnit], status_keys: list[str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for u in engines:
        endpoint: dict[str, Any] = {"port": "http", "path": "/metrics", "interval": "15s"}
        if u.service in ("vllm", "llamacpp"):
            endpoint["authorization"] = {"type": "Bearer", "credentials": {"name": SECRET, "key": u.key_env}}
        docs.append(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": _meta(u.backend.name, "engine"),
                "spec": {
                    "selector": {"matchLabels": {"app.kubernetes.io/name": u.backend.name}},
                    "podMetricsEndpoints": [endpoint],
                },
            }
        )
    docs.append(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": _meta("wave-gateway", "gateway"),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "wave-gateway"}},
                "podMetricsEndpoints": [_gateway_endpoint(status_keys)],
            },
        }
    )
    return docs


def _gateway_endpoint(status_keys: list[str]) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"port": "http", "path": "/metrics", "interval": "15s"}
    for name in status_keys:  # gateway.status_auth: /metrics needs the key
        endpoint["authorization"] = {"type": "Bearer", "credentials": {"name": SECRET, "key": name}}
    return endpoint


def _docs(docs: list[dict[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, width=4096) for d in docs)


def render_k8s(fleet: Fleet, plan: Plan, lays: list[NodeLayout]) -> dict[str, str]:
    engines = [u for lay in lays for u in lay.engines]
    redis = True  # several stateless gateway replicas share rate limits and key cache through Redis
    files = {
        "k8s/00-namespace.yaml": _docs(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": PART_OF}},
                }
            ]
        ),
        "k8s/10-gateway.yaml": _docs(_gateway(fleet, engines, redis)),
        "k8s/30-monitoring.yaml": _docs(
            [
                *_monitors(engines, status_key_envs(fleet)),
                {
                    "apiVersion": "monitoring.coreos.com/v1",
                    "kind": "PrometheusRule",
                    "metadata": _meta("wave-alerts", "monitoring"),
                    "spec": alert_rules(),
                },
            ]
        ),
    }
    if redis:
        files["k8s/11-redis.yaml"] = _docs(_redis())
    for u in engines:
        files[f"k8s/20-engine-{u.backend.name}.yaml"] = _docs(_engine(u))
    keys = sorted(
        {u.key_env for u in engines}
        | ({"REDIS_PASSWORD"} if redis else set())
        | {b.api_key_env for _, b in fleet.backends() if b.api_key_env}
        | set(status_key_envs(fleet))
    )
    files["k8s/wave-secrets.env.example"] = (
        "# Keys of the Secret `wave-secrets` the manifests use. Fill in a copy (never commit it), then:\n"
        f"#   kubectl -n {NAMESPACE} create secret generic {SECRET} --from-env-file=wave-secrets.env\n"
        + "".join(f"{k}=\n" for k in keys)
    )
    files["k8s/README.md"] = _readme(fleet, engines, redis)
    return files


def _readme(fleet: Fleet, engines: list[EngineUnit], redis: bool) -> str:
    lines = [
        f"# Kubernetes manifests for fleet `{fleet.name}`",
        "",
        "Written by `wave render --target k8s`. Needs the NVIDIA GPU Operator (device plugin for",
        "`nvidia.com/gpu`) and, for `30-monitoring.yaml`, the Prometheus Operator CRDs.",
        "",
        "```sh",
        "kubectl apply -f 00-namespace.yaml",
        "cp wave-secrets.env.example wave-secrets.env   # fill in the keys, keep it out of git",
        f"kubectl -n {NAMESPACE} create secret generic {SECRET} --from-env-file=wave-secrets.env",
        "kubectl apply -f .",
        f"kubectl -n {NAMESPACE} rollout status deploy/wave-gateway",
        "```",
        "",
        f"The gateway image `{GATEWAY_IMAGE}` is built from the compose target's `wave/Dockerfile`;",
        "push it to a registry the cluster can pull from and change the image name if needed.",
        "",
        "| engine | node | GPUs | args |",
        "|---|---|---|---|",
    ]
    for u in engines:
        gpus = len(u.gpu_ids) or (1 if u.jetson else 0)
        lines.append(f"| {u.backend.name} | {u.node.name} | {gpus} | `{' '.join(u.command)}` |")
    if redis:
        lines += ["", "The gateway runs 2 replicas and keeps shared state in Redis."]
    return "\n".join(lines) + "\n"
