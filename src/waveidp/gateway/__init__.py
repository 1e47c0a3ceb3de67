"""The Wave gateway: one OpenAI-compatible endpoint over a fleet of engines.

security = build_security(SecurityOptions(bootstrap_key=Secret(key)))   # waveidp.security
gw = Gateway(backends_from_urls(["http://127.0.0.1:8000"]), security.guard)
app = create_app(gw)          # any ASGI server; `waveidp.gateway.server.run` uses uvicorn
"""

from __future__ import annotations

from waveidp.gateway.app import create_app
from waveidp.gateway.backends import BackendState
from waveidp.gateway.build import backends_from_fleet, backends_from_urls
from waveidp.gateway.state import Gateway

__all__ = [
    "BackendState",
    "Gateway",
    "backends_from_fleet",
    "backends_from_urls",
    "create_app",
]
