"""Fleet (the landing page): every backend, model and device, live.

The live part is one fragment polled every `POLL_S` by htmx. It is rendered at most once per
`RENDER_EVERY_S` for all open tabs together, and a tab that already shows the current version
(its `X-Console-Version` header, sent by console.js) gets 204 and swaps nothing.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waveidp.console import fleet_view
from waveidp.console.sessions import Session

if TYPE_CHECKING:
    from waveidp.console.app import Console

POLL_S = 1
RENDER_EVERY_S = 0.5
RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class Rate:
    requests_per_s: float
    tokens_per_s: float
    errors: int


def rate(console: Console, now: float | None = None) -> Rate:
    """Requests, output tokens and errors this process answered over the last minute."""
    now = time.time() if now is None else now
    recent = console.gw.recent
    n = tokens = errors = 0
    if recent is not None:
        for r in recent.newest_first():
            if now - r.ts > RATE_WINDOW_S:
                break
            n += 1
            tokens += r.record.completion_tokens or 0
            errors += r.record.status >= 500
    return Rate(n / RATE_WINDOW_S, tokens / RATE_WINDOW_S, errors)


class FleetLive:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.share = fleet_view.RoutingShare(console.gw.metrics)
        self._cached: tuple[float, str, str] | None = None  # (when, version, html)

    def view(self) -> fleet_view.FleetView:
        gw = self.console.gw
        fleet = self.console.options.fleet
        return fleet_view.build(gw.backends, gw.routing, fleet, self.share, gw.node_samples)

    def fragment(self, request: Request) -> tuple[str, str]:
        """(version, html) of the live fragment, rendered at most every RENDER_EVERY_S."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < RENDER_EVERY_S:
            return self._cached[1], self._cached[2]
        context = {
            "view": self.view(),
            "rate": rate(self.console),
            "poll_s": POLL_S,
            "ref_prompt": fleet_view.REFERENCE_PROMPT,
            "base": self.console.env.globals["base"],
        }
        template = self.console.env.get_template("fragments/fleet_live.html")
        # the version covers what is shown, not the clock line, so an unchanged fleet swaps nothing
        body = template.render(version="", **context)
        version = hashlib.sha256(body.split("</p>", 1)[-1].encode()).hexdigest()[:16]
        html = template.render(version=version, **context)
        self._cached = (now, version, html)
        return version, html


def routes(console: Console) -> list[Route]:
    live = FleetLive(console)

    async def page(request: Request, session: Session) -> Response:
        _, html = live.fragment(request)
        return console.render(request, "fleet.html", live_html=html)

    async def fragment(request: Request, session: Session) -> Response:
        version, html = live.fragment(request)
        if request.headers.get("x-console-version") == version:
            return Response(status_code=204)
        return Response(html, media_type="text/html; charset=utf-8")

    return [
        Route("/", console.access.page(page), methods=["GET"]),
        Route("/fleet/live", console.access.page(fragment), methods=["GET"]),
    ]
