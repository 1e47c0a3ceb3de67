"""Issue 14's configuration contract, end to end: render each target, start the gateways from the
rendered files alone (their command, their WAVE_* variables with the rendered secrets filled in,
the mounted fleet file), one process per replica, each on a host of its own (a network namespace
whose /etc/hosts knows `redis`, `postgres.wave.svc`, ... as the cluster's DNS would), against real
PostgreSQL and Redis, and show the rendered settings in effect."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from render_support import write_tree

from netns_support import Host, TestNet, available
from state_support import PG_DB, Postgres, Redis, postgres_bin
from waveidp import fleet
from waveidp.fleet.settings import variables
from waveidp.plan import make_plan
from waveidp.render import fill, parse_env, render, required_secrets

pytestmark = pytest.mark.skipif(
    available() is not None or postgres_bin() is None,
    reason=f"needs network namespaces and PostgreSQL: {available() or 'apt-get install postgresql'}",
)

WAVE = Path(sys.executable).with_name("wave")
FLEET = """\
version: 1
name: twin
nodes:
  - name: gw
    devices:
      - {id: cpu, hardware: ryzen-9-9900x}
    backends:
      - name: emu
        engine: emulated
        url: http://EMU:8000
        models: [m]
gateway: {node: gw, port: 4000}
"""


def emulator(net: TestNet, workdir: Path) -> Host:
    host = net.add_host("emu")
    host.start(
        [WAVE, "emulate", "--model", "llama-3.2-3b", "--served-name", "m", "--step-ms", "1",
         "--prefill-ms", "1", "--host", "0.0.0.0", "--port", "8000"],
        log=workdir / "emu.log",
    )  # fmt: skip
    return host


def curl(client: Host, url: str, *args: str) -> tuple[int, str]:
    r = subprocess.run(
        client.cmd(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", *args, url]),
        capture_output=True,
        text=True,
    )
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def chat(client: Host, gateway: Host, key: str) -> int:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    return curl(
        client,
        f"http://{gateway.ip}:4000/v1/chat/completions",
        "-H",
        f"Authorization: Bearer {key}",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
    )[0]


def start_gateway(host: Host, env: dict[str, str], workdir: Path) -> None:
    """`wave serve` with exactly the rendered variables (and PATH, to find Python)."""
    clean = {"PATH": os.environ["PATH"], **env}
    log = workdir / f"{host.name}.log"
    host.start([WAVE, "serve"], log=log, env=clean)


def wait_ready(net: TestNet, client: Host, gateway: Host, workdir: Path) -> None:
    try:
        net.wait_reachable(client, gateway, 4000, timeout=60)
    except TimeoutError:
        raise AssertionError((workdir / f"{gateway.name}.log").read_text()[-2000:]) from None


def test_compose_render_runs_as_rendered(tmp_path: Path) -> None:
    with TestNet() as net:
        client, emu = net.add_host("client"), emulator(net, tmp_path)
        redis_host, gw = net.add_host("redis"), net.add_host("gw")
        path = tmp_path / "twin.yaml"
        path.write_text(FLEET.replace("EMU", emu.ip))
        f = fleet.load(path)
        plan = make_plan(f, profile="team")
        tree = write_tree(tmp_path / "out", render(f, plan, "compose", fill(required_secrets(f, plan), {})))
        service = yaml.safe_load((tree / "gw/docker-compose.yml").read_text())["services"]["wave-gateway"]
        assert service["command"] == ["wave", "serve"]
        assert set(service["environment"]) <= set(variables())  # the contract, nothing else
        secrets = parse_env((tree / "gw/.env").read_text())
        env = {
            k: re.sub(r"\$\{(\w+)\}", lambda m: secrets[m.group(1)], v)
            for k, v in service["environment"].items()
        }
        mounts = dict(v.split(":")[1::-1] for v in service["volumes"])  # container path -> source
        home = tmp_path / "wave-data"
        env["WAVE_CONFIG"] = str(tree / "gw" / mounts[env["WAVE_CONFIG"]].removeprefix("./"))
        env["WAVE_HOME"] = str(home) if mounts[env["WAVE_HOME"]] == "wave-data" else "?"
        redis_dir = Path(tempfile.mkdtemp(prefix="wave-redis-"))
        redis = Redis(redis_dir, redis_host.ip, 6379, secrets["REDIS_PASSWORD"], prefix=redis_host.cmd([]))
        redis.start()
        gw.hosts_file({"redis": redis_host.ip})
        net.wait_reachable(client, emu, 8000)
        start_gateway(gw, env, tmp_path)
        wait_ready(net, client, gw, tmp_path)
        key = subprocess.run(
            [WAVE, "keys", "create", "limited", "--rpm", "3", "--json"],
            env={**os.environ, "WAVE_HOME": str(home)}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        secret = json.loads(key.stdout)["key"]
        assert [chat(client, gw, secret) for _ in range(5)] == [200, 200, 200, 429, 429]
        # the limit was counted in the rendered Redis (WAVE_REDIS_URL with the .env password)
        found = subprocess.run(
            redis_host.cmd(["redis-cli", "-h", redis_host.ip, "-a", secrets["REDIS_PASSWORD"],
                            "--no-auth-warning", "--scan", "--pattern", "wave:rl:*"]),
            capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert "wave:rl:{key:" in found
        verdict = subprocess.run(
            [WAVE, "audit", "verify", "--json"], env={**os.environ, "WAVE_HOME": str(home)},
            capture_output=True, text=True,
        )  # fmt: skip
        assert verdict.returncode == 0 and json.loads(verdict.stdout)["rows"] == 5
        redis.stop()


def k8s_env(container: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """The variables Kubernetes would give the container: secretKeyRefs from the Secret, `$(NAME)`
    expanded from the variables defined before it (Kubernetes' own rule)."""
    env: dict[str, str] = {}
    for e in container["env"]:
        if "valueFrom" in e:
            env[e["name"]] = secrets[e["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), e["value"])
    return env


def test_k8s_replicas_share_keys_limits_and_one_audit_chain(tmp_path: Path) -> None:
    with TestNet() as net:
        client, emu = net.add_host("client"), emulator(net, tmp_path)
        pg_host, redis_host = net.add_host("pg"), net.add_host("redis")
        path = tmp_path / "twin.yaml"
        path.write_text(FLEET.replace("EMU", emu.ip))
        f = fleet.load(path)
        files = render(f, make_plan(f), "k8s")
        config, deploy, _ = [d for d in yaml.safe_load_all(files["k8s/10-gateway.yaml"]) if d]
        wanted = parse_env(files["k8s/wave-secrets.env.example"].replace("=\n", "=x\n"))
        secrets = {name: f"{name.lower()}-{os.urandom(16).hex()}" for name in wanted}
        pod = deploy["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"] == ["wave", "serve"]
        replicas = deploy["spec"]["replicas"]
        assert replicas == 2
        pg = Postgres.create(pg_host.ip, 5432, secrets["POSTGRES_PASSWORD"], prefix=pg_host.cmd([]))
        redis = Redis(Path(tempfile.mkdtemp(prefix="wave-redis-")), redis_host.ip, 6379,
                      secrets["REDIS_PASSWORD"], prefix=redis_host.cmd([]))  # fmt: skip
        redis.start()
        names = {"postgres.wave.svc": pg_host.ip, "redis.wave.svc": redis_host.ip}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        gateways = []
        try:
            net.wait_reachable(client, emu, 8000)
            for i in range(replicas):
                gw = net.add_host(f"gw{i}")
                gw.hosts_file(names)
                env = k8s_env(container, secrets)
                configdir = tmp_path / f"gw{i}-config"  # the ConfigMap volume
                configdir.mkdir()
                (configdir / "wave.yaml").write_text(config["data"]["wave.yaml"])
                home = tmp_path / f"gw{i}-home"  # the emptyDir volume
                assert env["WAVE_CONFIG"].startswith(mounts["config"]) and env["WAVE_HOME"] == mounts["home"]
                env["WAVE_CONFIG"] = str(configdir / Path(env["WAVE_CONFIG"]).name)
                env["WAVE_HOME"] = str(home)
                start_gateway(gw, env, tmp_path)
                gateways.append(gw)
            for gw in gateways:
                wait_ready(net, client, gw, tmp_path)
            a, b = gateways
            admin = [
                "-H",
                f"Authorization: Bearer {secrets['WAVE_ADMIN_KEY']}",
                "-H",
                "Content-Type: application/json",
            ]
            code, body = curl(
                client, f"http://{a.ip}:4000/admin/keys", *admin, "-d", '{"name": "team", "rpm": 4}'
            )
            assert code == 201, body
            key = json.loads(body)["key"]
            # made through replica a, used through replica b at once; the rpm 4 counted across both
            statuses = [chat(client, gw, key) for gw in (b, a, b, a, b, a)]
            assert statuses == [200, 200, 200, 200, 429, 429]
            assert chat(client, b, secrets["WAVE_API_KEY"]) == 200  # one bootstrap key for all replicas
            out = subprocess.run(
                a.cmd([WAVE, "audit", "verify", "--json"]),  # from a replica's host, with its names
                env={**os.environ, "WAVE_DATABASE_URL": env["WAVE_DATABASE_URL"]},
                capture_output=True, text=True,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            verdict = json.loads(out.stdout)
            counts = subprocess.run(
                a.cmd([str(postgres_bin() / "psql"), env["WAVE_DATABASE_URL"], "-Atc",
                       # a 429 is answered before the body names the model (issue 19)
                       "SELECT count(*) FILTER (WHERE model = 'm' OR status = 429), count(*) "
                       "FROM wave_audit"]),
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            chats, total = map(int, counts.split("|"))
            assert chats == 7  # both replicas' requests ...
            assert verdict["ok"] and verdict["rows"] == total  # ... in one verified chain
            assert PG_DB in env["WAVE_DATABASE_URL"]
        finally:
            redis.stop()
            pg.destroy()
