"""Kubernetes manifests: engines as Deployments pinned to their node with `nvidia.com/gpu` limits,
the gateway as a Deployment of replicas behind a Service that share their state (keys, usage and
the audit log in PostgreSQL, limits in Redis), PodMonitors and a PrometheusRule for the Prometheus
Operator. Secrets are referenced by name, never rendered."""

from __future__ import annotations

from typing import Any

import yaml

from waveidp.fleet.models import Fleet
from waveidp.plan import Plan
from waveidp.render._engines import EngineUnit, models_dir
from waveidp.render._gateway import (
    CONFIG_PATH,
    HOME,
    POD_NETWORKS,
    backend_key_envs,
    gateway_config,
    gateway_settings,
    serve_command,
    status_key_envs,
)
from waveidp.render._layout import NodeLayout
from waveidp.render._observe import alert_rules

NAMESPACE = "wave"
SECRET = "wave-secrets"
GATEWAY_IMAGE = "waveidp/gateway:0.1.0"
REDIS_IMAGE = "redis:7.2-alpine"
POSTGRES_IMAGE = "postgres:16-alpine"
GATEWAY_REPLICAS = 2
INGRESS_CLASS = "nginx"  # ingress-nginx, whose annotations cap connections per client
# Secret keys the gateway replicas share: one bootstrap key and one admin key for all of them
SHARED_KEYS = ("WAVE_API_KEY", "WAVE_ADMIN_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD")
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
        {"name": "models", "hostPath": {"path": models_dir(u.node), "type": "Directory"}},
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


def _gateway(fleet: Fleet, engines: list[EngineUnit]) -> list[dict[str, Any]]:
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
        "data": {"wave.yaml": gateway_config(in_cluster, proxy_networks=POD_NETWORKS)},
    }
    # the passwords first: Kubernetes expands $(NAME) only from variables defined before
    env = [_secret_env(name, name) for name in backend_key_envs(fleet)]
    env += [_secret_env(name, name) for name in [*SHARED_KEYS, *status_key_envs(fleet)]]
    settings = gateway_settings(
        redis_url=f"redis://:$(REDIS_PASSWORD)@redis.{NAMESPACE}.svc:6379/0",
        database_url=f"postgresql://wave:$(POSTGRES_PASSWORD)@postgres.{NAMESPACE}.svc:5432/wave",
    )
    env += [{"name": k, "value": v} for k, v in settings.items()]
    container = {
        "name": "gateway",
        "image": GATEWAY_IMAGE,
        "args": serve_command(),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": _probe("/ready", "http"),
        "livenessProbe": _probe("/health", "http"),
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_PATH.rsplit("/", 1)[0], "readOnly": True},
            {"name": "home", "mountPath": HOME},
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
        },
    }
    pod = {
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": "wave-gateway"}},
            # per pod: the audit spool (rows waiting while PostgreSQL is down) and metrics files;
            # keys and the audit log are in PostgreSQL, shared by every replica
            {"name": "home", "emptyDir": {}},
        ],
    }
    return [
        config,
        _deployment("wave-gateway", "gateway", GATEWAY_REPLICAS, pod, recreate=False),
        _service("wave-gateway", "gateway", port),
    ]


def _ingress(fleet: Fleet) -> dict[str, Any]:
    """The gateway's way in from outside the cluster, for ingress-nginx. Every client reaches the
    gateway from the controller's pods (uncapped there, `POD_NETWORKS`), so the controller keeps the
    per-client connection cap; bodies up to the gateway's own limit, streams unbuffered, read
    timeouts as long as a request may take."""
    g = fleet.gateway
    timeout = str(int(g.total_timeout_s))
    annotations = {
        "nginx.ingress.kubernetes.io/limit-connections": str(g.max_connections_per_client),
        "nginx.ingress.kubernetes.io/proxy-body-size": str(g.max_body_bytes),
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-connect-timeout": str(max(1, int(g.connect_timeout_s))),
        "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
    }
    path = {
        "path": "/",
        "pathType": "Prefix",
        "backend": {"service": {"name": "wave-gateway", "port": {"name": "http"}}},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**_meta("wave-gateway", "gateway"), "annotations": annotations},
        "spec": {"ingressClassName": INGRESS_CLASS, "rules": [{"http": {"paths": [path]}}]},
    }


def _postgres() -> list[dict[str, Any]]:
    container = {
        "name": "postgres",
        "image": POSTGRES_IMAGE,
        "env": [
            _secret_env("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
            {"name": "POSTGRES_USER", "value": "wave"},
            {"name": "POSTGRES_DB", "value": "wave"},
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "http", "containerPort": 5432, "protocol": "TCP"}],
        "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "wave"]}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 10},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    }
    stateful = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta("postgres", "state"),
        "spec": {
            "serviceName": "postgres",
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
            "template": {
                "metadata": {"labels": _meta("postgres", "state")["labels"]},
                "spec": {"containers": [container]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }
            ],
        },
    }
    return [stateful, _service("postgres", "state", 5432)]


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
        "k8s/10-gateway.yaml": _docs(_gateway(fleet, engines)),
        "k8s/11-redis.yaml": _docs(_redis()),
        "k8s/12-postgres.yaml": _docs(_postgres()),
        "k8s/13-gateway-ingress.yaml": _docs([_ingress(fleet)]),
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
    for u in engines:
        files[f"k8s/20-engine-{u.backend.name}.yaml"] = _docs(_engine(u))
    keys = sorted(
        {u.key_env for u in engines}
        | set(SHARED_KEYS)
        | {b.api_key_env for _, b in fleet.backends() if b.api_key_env}
        | set(status_key_envs(fleet))
    )
    files["k8s/wave-secrets.env.example"] = (
        "# Keys of the Secret `wave-secrets` the manifests use. Fill in a copy (never commit it), then:\n"
        f"#   kubectl -n {NAMESPACE} create secret generic {SECRET} --from-env-file=wave-secrets.env\n"
        + "".join(f"{k}=\n" for k in keys)
    )
    files["k8s/README.md"] = _readme(fleet, engines)
    return files


def _readme(fleet: Fleet, engines: list[EngineUnit]) -> str:
    lines = [
        f"# Kubernetes manifests for fleet `{fleet.name}`",
        "",
        "Written by `wave render --target k8s`. Needs the NVIDIA GPU Operator (device plugin for",
        "`nvidia.com/gpu`), for `13-gateway-ingress.yaml` ingress-nginx (class `nginx`) and, for",
        "`30-monitoring.yaml`, the Prometheus Operator CRDs.",
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
    lines += [
        "",
        f"The gateway runs {GATEWAY_REPLICAS} replicas that share one state: API keys, usage and the",
        "hash-chained audit log in PostgreSQL (`12-postgres.yaml`), rate limits in Redis",
        "(`11-redis.yaml`); one bootstrap key (`WAVE_API_KEY`) and one admin key (`WAVE_ADMIN_KEY`)",
        "from the Secret. Each replica's settings are `WAVE_*` variables and the ConfigMap's fleet",
        "file, nothing else (docs/configuration.md). Check the chain from any pod:",
        f"`kubectl -n {NAMESPACE} exec deploy/wave-gateway -- wave audit verify`.",
        "",
        "Clients come in through the Ingress, which caps each client address at",
        f"`gateway.max_connections_per_client` ({fleet.gateway.max_connections_per_client}) connections",
        "(`limit-connections`; ingress-nginx answers 503 beyond it): the gateway pods see every client",
        "as the controller, so the rendered fleet file leaves the private networks a pod network is in",
        f"uncapped ({', '.join(POD_NETWORKS)}). The controller must see the real client address",
        "(a LoadBalancer Service with `externalTrafficPolicy: Local`, or the PROXY protocol), else",
        "every client counts as one node.",
    ]
    return "\n".join(lines) + "\n"
