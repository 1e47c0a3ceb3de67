"""The gateway container's command and key variables, the same under Compose and Kubernetes."""

from __future__ import annotations

from waveidp.fleet.models import Fleet
from waveidp.render._engines import RENDERED_ENGINES, key_env

CONFIG_PATH = "/etc/wave/wave.yaml"


def serve_command(port: int) -> list[str]:
    return ["wave", "serve", "--config", CONFIG_PATH, "--host", "0.0.0.0", "--port", str(port)]


def backend_key_envs(fleet: Fleet) -> list[str]:
    """The variables holding backend keys: one per engine Wave renders, plus any the fleet names."""
    return [key_env(b) for _, b in fleet.backends() if b.engine in RENDERED_ENGINES or b.api_key_env]
