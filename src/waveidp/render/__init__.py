"""Deployment files from a fleet and its plan: docker compose or Kubernetes, NGINX, Prometheus, Grafana.

    from waveidp.render import render
    files = render(fleet, plan, "compose", secrets)   # {relative path: text}, byte-identical per input

Rendering is pure; `wave render` writes the files, keeps existing `.env` secrets and reports drift.
"""

from waveidp.render._engines import models_dir
from waveidp.render._errors import RenderError
from waveidp.render._gateway import gateway_config
from waveidp.render._render import Target, layouts, render, required_secrets
from waveidp.render._secrets import fill, parse_env

__all__ = [
    "RenderError",
    "Target",
    "fill",
    "gateway_config",
    "layouts",
    "models_dir",
    "parse_env",
    "render",
    "required_secrets",
]
