"""The rendered files pass the real tools: docker-compose, nginx, promtool, a dashboard schema."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import jsonschema
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from render_support import HOME_LAB, needs, write_tree

from waveidp import fleet
from waveidp.plan import make_plan
from waveidp.render import fill, render, required_secrets

SCHEMA = json.loads((Path(__file__).parent / "grafana_dashboard.schema.json").read_text())
GATEWAY_METRICS = (
    "wave_requests_total",
    "wave_request_ttft_seconds",
    "wave_request_itl_seconds",
    "wave_request_duration_seconds",
    "wave_tokens_total",
    "wave_backend_healthy",
    "wave_backend_inflight",
)


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"
    return r


@needs("docker-compose")
def test_every_compose_file_passes_docker_compose_config(home_lab_tree: Path) -> None:
    files = sorted(home_lab_tree.glob("*/docker-compose.yml"))
    assert {f.parent.name for f in files} == {
        "schlimers-server",
        "xps15-inference",
        "sclimers-gateway",
        "jetson",
    }
    for f in files:
        _run(["docker-compose", "-f", str(f), "config", "-q"], cwd=f.parent)
        # secrets reach compose through .env, never as literals in the file
        assert "${" in f.read_text() and "=" not in f.read_text().split("${")[1].split("}")[0]


def _self_signed(tls: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wave.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    tls.mkdir(parents=True)
    (tls / "wave.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tls / "wave.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@needs("nginx")
def test_nginx_site_passes_nginx_t(home_lab_tree: Path, tmp_path: Path) -> None:
    site = (home_lab_tree / "sclimers-gateway" / "nginx" / "wave.conf").read_text()
    for directive in (
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_read_timeout 900s;",
        "listen 443 ssl",
        "limit_conn wave_per_client 256;",  # gateway.max_connections_per_client, kept per client here
    ):
        assert directive in site
    gateway = yaml.safe_load((home_lab_tree / "sclimers-gateway" / "wave" / "wave.yaml").read_text())
    assert "172.16.0.0/12" in gateway["gateway"]["uncapped_addresses"]  # NGINX, through Docker's bridge
    conf = tmp_path / "conf"
    _self_signed(conf / "tls")
    (conf / "conf.d").mkdir()
    (conf / "conf.d" / "default.conf").write_text(site)
    (conf / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {conf}/conf.d/*.conf;\n}}\n"
    )
    r = _run(["nginx", "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf / "nginx.conf")])
    assert "test is successful" in r.stderr


@needs("promtool")
def test_prometheus_config_and_rules_pass_promtool(home_lab_tree: Path, tmp_path: Path) -> None:
    prom = home_lab_tree / "sclimers-gateway" / "prometheus"
    config = yaml.safe_load((prom / "prometheus.yml").read_text())
    # what the container's entrypoint does at start: config copied next to keys/ written from .env
    work = tmp_path / "config"
    (work / "keys").mkdir(parents=True)
    for name in ("prometheus.yml", "alerts.yml"):
        (work / name).write_text((prom / name).read_text())
    for job in config["scrape_configs"]:
        if "authorization" in job:
            (work / job["authorization"]["credentials_file"]).write_text("test-key")
    _run(["promtool", "check", "config", str(work / "prometheus.yml")])
    r = _run(["promtool", "check", "rules", str(prom / "alerts.yml")])
    assert "SUCCESS: 9 rules found" in r.stdout
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert {"wave-gateway", "engine-vllm-5070ti", "engine-llamacpp-jetson", "wave-exporter"} <= set(jobs)
    assert "gpu-dcgm" not in jobs  # DCGM runs nowhere in the seed fleet (GeForce and Jetson only)
    # Wave's exporter on each GPU node, the Jetson included (tegrastats)
    targets = {c["labels"]["node"]: c["targets"] for c in jobs["wave-exporter"]["static_configs"]}
    assert targets == {
        "schlimers-server": ["schlimers-server:9401"],
        "xps15-inference": ["192.168.1.15:9401"],
        "jetson": ["192.168.100.50:9401"],
    }


@needs("promtool")
def test_gpu_memory_pressure_is_used_over_total_not_used_over_free(
    home_lab_tree: Path, tmp_path: Path
) -> None:
    """The seeds alerted on FB_USED / FB_FREE > 0.9, which fires at 47% use; Wave's rule fires near full."""
    rules = home_lab_tree / "sclimers-gateway" / "prometheus" / "alerts.yml"
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # half full: used 8 GiB, free 8 GiB -> seed ratio 1.0 (> 0.9), real pressure 50 %
                    {"series": 'DCGM_FI_DEV_FB_USED{gpu="0",Hostname="half"}', "values": "8192x20"},
                    {"series": 'DCGM_FI_DEV_FB_FREE{gpu="0",Hostname="half"}', "values": "8192x20"},
                    # nearly full: 16000 of 16384 MiB used
                    {"series": 'DCGM_FI_DEV_FB_USED{gpu="0",Hostname="full"}', "values": "16000x20"},
                    {"series": 'DCGM_FI_DEV_FB_FREE{gpu="0",Hostname="full"}', "values": "384x20"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": "GPUMemoryPressure",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "gpu": "0", "Hostname": "full"},
                                "exp_annotations": {
                                    "summary": "GPU 0 on full has used more than 97% of its memory"
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    spec = tmp_path / "test.yml"
    spec.write_text(yaml.safe_dump(test))
    r = _run(["promtool", "test", "rules", str(spec)])
    assert "SUCCESS" in r.stdout


def test_dashboards_match_schema_and_use_gateway_metric_names(home_lab_tree: Path) -> None:
    dash = home_lab_tree / "sclimers-gateway" / "grafana" / "dashboards"
    exprs = []
    for name in ("fleet", "engines", "gateway"):
        doc = json.loads((dash / f"{name}.json").read_text())
        jsonschema.validate(doc, SCHEMA)
        exprs += [t["expr"] for p in doc["panels"] for t in p["targets"]]
    text = "\n".join(exprs)
    for metric in GATEWAY_METRICS:
        assert metric in text, metric
    for metric in ("DCGM_FI_DEV_FB_USED", "node_cpu_seconds_total", "vllm:", "llamacpp:"):
        assert metric in text
    # one set of GPU names: DCGM exporter's, which `wave exporter` publishes too
    assert "nvidia_smi_" not in text
    prov = yaml.safe_load(
        (home_lab_tree / "sclimers-gateway/grafana/provisioning/datasources/wave.yml").read_text()
    )
    uids = {d["uid"] for d in prov["datasources"]}
    doc = json.loads((dash / "gateway.json").read_text())
    assert {p["datasource"]["uid"] for p in doc["panels"]} <= uids


@needs("docker-compose")
def test_team_profile_adds_redis_loki_mlflow_n8n_and_still_passes_compose(tmp_path: Path) -> None:
    f = fleet.load(HOME_LAB)
    plan = make_plan(f, profile="team", goals=["mlops", "automation"])
    tree = write_tree(tmp_path, render(f, plan, "compose", fill(required_secrets(f, plan), {})))
    gateway = tree / "sclimers-gateway"
    _run(["docker-compose", "-f", str(gateway / "docker-compose.yml"), "config", "-q"], cwd=gateway)
    services = yaml.safe_load((gateway / "docker-compose.yml").read_text())["services"]
    wanted = {"redis", "loki", "mlflow", "n8n", "wave-gateway", "nginx", "prometheus", "grafana"}
    assert wanted <= set(services)
    assert "ports" not in services["redis"]  # internal only
    assert services["wave-gateway"]["environment"]["WAVE_REDIS_URL"].startswith(
        "redis://:${REDIS_PASSWORD}@redis"
    )
    env = (gateway / ".env").read_text()
    for name in ("REDIS_PASSWORD", "N8N_ENCRYPTION_KEY", "GRAFANA_ADMIN_PASSWORD"):
        assert f"{name}=" in env and f"{name}=\n" not in env
    datasources = gateway / "grafana/provisioning/datasources/wave.yml"
    sources = yaml.safe_load(datasources.read_text())["datasources"]
    assert {s["type"] for s in sources} == {"prometheus", "loki"}
    # authentik is planned for a team but Wave writes no container for it: the README says so
    assert "authentik" in (gateway / "README.md").read_text()


@needs("promtool")
@needs("docker-compose")
def test_status_auth_gives_prometheus_the_gateways_metrics_key(tmp_path: Path) -> None:
    f = fleet.load(HOME_LAB)
    f = f.model_copy(update={"gateway": f.gateway.model_copy(update={"status_auth": True})})
    plan = make_plan(f)
    tree = write_tree(tmp_path / "tree", render(f, plan, "compose", fill(required_secrets(f, plan), {})))
    node = tree / "sclimers-gateway"
    _run(["docker-compose", "-f", str(node / "docker-compose.yml"), "config", "-q"], cwd=node)
    services = yaml.safe_load((node / "docker-compose.yml").read_text())["services"]
    assert services["wave-gateway"]["environment"]["WAVE_METRICS_KEY"] == "${WAVE_METRICS_KEY}"
    assert services["prometheus"]["environment"]["WAVE_METRICS_KEY"] == "${WAVE_METRICS_KEY}"
    assert "keys/WAVE_METRICS_KEY" in " ".join(services["prometheus"]["entrypoint"])
    assert "WAVE_METRICS_KEY=" in (node / ".env").read_text()
    assert "status_auth: true" in (node / "wave" / "wave.yaml").read_text()  # the gateway's own file
    config = yaml.safe_load((node / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "wave-gateway")
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "keys/WAVE_METRICS_KEY"}
    work = tmp_path / "config"
    (work / "keys").mkdir(parents=True)
    (work / "prometheus.yml").write_text((node / "prometheus" / "prometheus.yml").read_text())
    (work / "alerts.yml").write_text((node / "prometheus" / "alerts.yml").read_text())
    for j in config["scrape_configs"]:
        if "authorization" in j:
            (work / j["authorization"]["credentials_file"]).write_text("test-key")
    _run(["promtool", "check", "config", str(work / "prometheus.yml")])
    k8s = render(f, plan, "k8s")
    assert "WAVE_METRICS_KEY=" in k8s["k8s/wave-secrets.env.example"]
    monitor = next(
        d
        for d in yaml.safe_load_all(k8s["k8s/30-monitoring.yaml"])
        if d["metadata"]["name"] == "wave-gateway"
    )
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["authorization"]["credentials"] == {"name": "wave-secrets", "key": "WAVE_METRICS_KEY"}
