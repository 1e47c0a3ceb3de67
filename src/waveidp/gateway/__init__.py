"""The Wave gateway: one OpenAI-compatible endpoint over a fleet of engines.

setup = GatewaySetup(backends_from_urls(["http://127.0.0.1:8000"]), GatewayConfig(), RoutingConfig(),
                     SecurityOptions(bootstrap_key=Secret(key)))   # waveidp.gateway.compose
serve(setup, on_ready=lambda gw: print("ready"))                   # or: with compose(setup) as app
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
