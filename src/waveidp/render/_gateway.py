"""The gateway container's command, settings, key variables and configuration file, the same under
Compose and Kubernetes.

The container runs plain `wave serve`; everything it needs is the configuration contract of
`waveidp.fleet.settings`: the rendered fleet file (`WAVE_CONFIG`) and `WAVE_*` variables, nothing
else (plus the backend key variables that file names, and the passwords a `WAVE_*` URL is built
from)."""

from __future__ import annotations

from waveidp.fleet import dump
from waveidp.fleet.models import Backend, Fleet
from waveidp.render._engines import RENDERED_ENGINES, key_env

CONFIG_PATH = "/etc/wave/wave.yaml"
HOME = "/var/lib/wave"


def serve_command() -> list[str]:
    return ["wave", "serve"]


def gateway_settings(*, redis_url: str | None, database_url: str | None) -> dict[str, str]:
    """The `WAVE_*` settings of the gateway container (names from `waveidp.fleet.settings`)."""
    from waveidp.fleet.settings import env_name

    env = {"WAVE_CONFIG": CONFIG_PATH, "WAVE_HOME": HOME, env_name("host"): "0.0.0.0"}
    if redis_url:
        env[env_name("redis_url")] = redis_url
    if database_url:
        env[env_name("database_url")] = database_url
    return env


def backend_key_envs(fleet: Fleet) -> list[str]:
    """The variables holding backend keys: one per engine Wave renders, plus any the fleet names."""
    return [key_env(b) for _, b in fleet.backends() if b.engine in RENDERED_ENGINES or b.api_key_env]


# Where a gateway container sees the NGINX of its own node come from: Docker's bridge networks
# (the published port is bound to 127.0.0.1 then, so nothing else reaches it from there).
DOCKER_BRIDGES = ("172.16.0.0/12",)
# Where a gateway pod sees the ingress controller come from: the cluster's pod network, which is
# in the private ranges (RFC 1918, IPv6 ULA) whatever the CNI.
POD_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


def gateway_config(fleet: Fleet, *, proxy_networks: tuple[str, ...] = ()) -> str:
    """The fleet file as the gateway reads it, with the key variables of rendered engines filled in;
    `proxy_networks`: where a proxy that caps each client itself (NGINX's `limit_conn`, the
    ingress's `limit-connections`) comes from, added to the uncapped addresses, since every client
    then arrives from there."""
    data = fleet.model_dump(mode="json")
    uncapped = data["gateway"]["uncapped_addresses"]
    uncapped += [n for n in proxy_networks if n not in uncapped]
    for node in data["nodes"]:
        for b in node["backends"]:
            if b["engine"] in RENDERED_ENGINES and not b.get("api_key_env"):
                b["api_key_env"] = key_env(Backend.model_validate(b))
    head = "# The Wave gateway's configuration: the fleet file, written by `wave render`.\n"
    return head + dump(Fleet.model_validate(data))


# The key Prometheus reads the gateway's /metrics with when the fleet sets gateway.status_auth.
STATUS_KEY_ENV = "WAVE_METRICS_KEY"


def status_key_envs(fleet: Fleet) -> list[str]:
    return [STATUS_KEY_ENV] if fleet.gateway.status_auth else []
