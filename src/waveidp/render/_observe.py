"""Prometheus scrape config and alert rules, Grafana provisioning and dashboards."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import orjson

from waveidp.catalog.services import service
from waveidp.fleet.models import Fleet
from waveidp.observe.samples import SLOWDOWN_REASONS
from waveidp.plan import Plan
from waveidp.render._data import dashboards, defaults
from waveidp.render._engines import RENDERED_ENGINES, key_env
from waveidp.render._gateway import STATUS_KEY_ENV

DATASOURCE_UID = "wave-prometheus"
LOKI_UID = "wave-loki"


def _target(host: str, port: int, local: bool, compose_name: str) -> str:
    return f"{compose_name}:{port}" if local else f"{host}:{port}"


def prometheus_config(fleet: Fleet, plan: Plan, node: str) -> dict[str, Any]:
    d = defaults()
    jobs: list[dict[str, Any]] = [
        {"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]},
    ]
    gw = [x.node for x in plan.must + plan.should if x.service == "wave-gateway" and x.node]
    if gw:
        gw_node = fleet.node(gw[0])
        target = _target(gw_node.address, fleet.gateway.port, gw[0] == node, "wave-gateway")
        gateway_job: dict[str, Any] = {
            "job_name": "wave-gateway",
            "static_configs": [{"targets": [target], "labels": {"node": gw_node.name}}],
        }
        if fleet.gateway.status_auth:  # /metrics needs a key: the one the compose file writes to keys/
            gateway_job["authorization"] = {"type": "Bearer", "credentials_file": f"keys/{STATUS_KEY_ENV}"}
        jobs.append(gateway_job)
    for n, b in fleet.backends():
        if b.engine not in RENDERED_ENGINES and b.engine not in ("nim", "trtllm"):
            continue
        url = urlparse(b.url)
        port = url.port or (443 if url.scheme == "https" else 80)
        metrics_port = 8002 if b.engine == "triton" else port
        job: dict[str, Any] = {
            "job_name": f"engine-{b.name}",
            "scheme": url.scheme,
            "metrics_path": "/metrics",
            "static_configs": [
                {
                    "targets": [f"{url.hostname}:{metrics_port}"],
                    "labels": {"node": n.name, "backend": b.name, "engine": b.engine},
                }
            ],
        }
        if b.engine in ("vllm", "llamacpp"):
            job["authorization"] = {"type": "Bearer", "credentials_file": f"keys/{key_env(b)}"}
        jobs.append(job)
    for sid, job_name in (("dcgm-exporter", "gpu-dcgm"), ("wave-exporter", "wave-exporter")):
        port = next(iter(service(sid).deploy.ports.values()))
        targets = [
            (fleet.node(x.node), x.node) for x in plan.must + plan.should if x.service == sid and x.node
        ]
        if targets:
            jobs.append(
                {
                    "job_name": job_name,
                    "static_configs": [
                        {"targets": [_target(n.address, port, name == node, sid)], "labels": {"node": name}}
                        for n, name in targets
                    ],
                }
            )
    return {
        "global": {
            "scrape_interval": f"{d.scrape_interval_s}s",
            "evaluation_interval": f"{d.evaluation_interval_s}s",
        },
        "rule_files": ["alerts.yml"],
        "scrape_configs": jobs,
    }


def alert_rules() -> dict[str, Any]:
    a = defaults().alerts
    ratio = a.gpu_memory_pressure_ratio

    def rule(name: str, expr: str, for_: str, severity: str, summary: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": for_,
            "labels": {"severity": severity},
            "annotations": {"summary": summary},
        }

    gpu = [
        rule(
            "GPUMemoryPressure",
            f"DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > {ratio}",
            a.gpu_memory_pressure_for,
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has used more than %g%% of its memory"
            % (ratio * 100),
        ),
        rule(
            "GPUXidError",
            "DCGM_FI_DEV_XID_ERRORS != 0",
            "0m",
            "critical",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID {{ $value }} (from DCGM or "
            "from NVML events in wave exporter; Jetson XIDs appear only in the kernel log)",
        ),
        rule(
            "GPUClocksThrottled",
            "DCGM_FI_DEV_CLOCKS_EVENT_REASONS and ("
            + " or ".join(
                f"floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / {bit}) % 2 == 1" for bit in SLOWDOWN_REASONS
            )
            + ")",
            a.gpu_throttle_for,
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} runs below its clocks for heat or a power "
            "brake (NVML clocks event reasons bitmask {{ $value }}; the power cap and idle do not count)",
        ),
    ]
    host = [
        rule(
            "HostMemoryPressure",
            f"node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < {a.host_memory_available_ratio}",
            a.host_memory_for,
            "warning",
            "{{ $labels.instance }} has less than %g%% of its memory available"
            % (a.host_memory_available_ratio * 100),
        ),
        rule(
            "ExporterStalled",
            f"time() - wave_exporter_last_sample_timestamp_seconds > {a.exporter_stall_s}",
            "2m",
            "warning",
            "wave exporter on {{ $labels.instance }} has not finished a device read for over "
            f"{a.exporter_stall_s} s (a GPU or tegrastats is hanging)",
        ),
    ]
    serving = [
        rule(
            "BackendDown",
            "wave_backend_healthy == 0",
            a.backend_down_for,
            "critical",
            "the gateway marks backend {{ $labels.backend }} unhealthy",
        ),
        rule(
            "ScrapeTargetDown",
            'up{job=~"engine-.*|gpu-.*|wave-gateway|wave-exporter"} == 0',
            a.backend_down_for,
            "critical",
            "Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}",
        ),
        rule(
            "ThroughputDrop",
            f'sum(rate(wave_tokens_total{{direction="output"}}[10m])) < {a.throughput_drop_ratio} * '
            'sum(rate(wave_tokens_total{direction="output"}[6h]))'
            " and sum(rate(wave_requests_total[10m])) > 0",
            a.throughput_drop_for,
            "warning",
            "output tokens/s fell below %g%% of the 6-hour rate while requests keep coming"
            % (a.throughput_drop_ratio * 100),
        ),
        rule(
            "GatewayErrorRate",
            'sum(rate(wave_requests_total{status=~"5.."}[5m]))'
            f" / clamp_min(sum(rate(wave_requests_total[5m])), 1e-9) > {a.gateway_error_ratio}",
            a.gateway_error_for,
            "critical",
            "more than %g%% of gateway requests fail with 5xx" % (a.gateway_error_ratio * 100),
        ),
    ]
    return {
        "groups": [
            {"name": "wave-gpu", "rules": gpu},
            {"name": "wave-host", "rules": host},
            {"name": "wave-serving", "rules": serving},
        ]
    }


def grafana_files(loki: bool) -> dict[str, Any]:
    sources: list[dict[str, Any]] = [
        {
            "name": "Prometheus",
            "type": "prometheus",
            "uid": DATASOURCE_UID,
            "access": "proxy",
            "url": "http://prometheus:9090",
            "isDefault": True,
            "editable": False,
        }
    ]
    if loki:
        sources.append(
            {
                "name": "Loki",
                "type": "loki",
                "uid": LOKI_UID,
                "access": "proxy",
                "url": "http://loki:3100",
                "editable": False,
            }
        )
    return {
        "grafana/provisioning/datasources/wave.yml": {"apiVersion": 1, "datasources": sources},
        "grafana/provisioning/dashboards/wave.yml": {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "wave",
                    "folder": "Wave",
                    "type": "file",
                    "disableDeletion": True,
                    "allowUiUpdates": False,
                    "options": {"path": "/var/lib/grafana/dashboards"},
                }
            ],
        },
    }


def dashboard_json(key: str) -> str:
    spec = dashboards()[key]
    panels = []
    for i, p in enumerate(spec["panels"]):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": p["title"],
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
                "targets": [
                    {
                        "refId": "A",
                        "expr": p["expr"],
                        "legendFormat": p["legend"],
                        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
                    }
                ],
                "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            }
        )
    doc = {
        "uid": f"wave-{key}",
        "title": spec["title"],
        "tags": ["wave"],
        "timezone": "browser",
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
