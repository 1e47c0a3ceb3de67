"""The console's pages: each module returns its routes, guarded by `Access.page`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from waveidp.console.app import Console


def build(console: Console) -> list[BaseRoute]:
    from waveidp.console.pages import audit_log, bench, fleet, keys, playground, requests, sizing

    routes: list[BaseRoute] = []
    for module in (fleet, requests, keys, audit_log, sizing, bench, playground):
        routes += module.routes(console)
    return routes
