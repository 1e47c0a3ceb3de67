"""Audit (admin): browse the hash-chained audit log, and verify the chain from the page; when it is
broken, the verdict names the first bad row and the page shows the rows around it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waveidp.console.access import Refused
from waveidp.console.pages.requests import filter_choices
from waveidp.console.sessions import Session
from waveidp.errors import WaveError
from waveidp.security import audit

if TYPE_CHECKING:
    from waveidp.console.app import Console

PAGE = 100
AROUND = 10
ENDPOINTS = ("chat", "completions", "embeddings")
CONSOLE_ACTIONS = tuple(
    f"console.{a}"
    for a in (
        "sign-in", "sign-in.oidc", "sign-out", "keys.create", "keys.rotate", "keys.revoke", "keys.edit",
        "audit.verify", "bench.start", "bench.stop",
    )
)  # fmt: skip


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def routes(console: Console) -> list[Route]:
    def path() -> Path | str:
        p = console.security.audit_where
        if p is None:
            raise Refused(409, "auditing is off: the gateway keeps no audit log")
        return p

    async def index(request: Request, session: Session) -> Response:
        q = request.query_params
        where = audit.AuditFilter(principal=q.get("principal") or None, endpoint=q.get("endpoint") or None)
        around = _int(q.get("around"))
        p = path()
        rows = []
        if audit.readable(p):
            if around is not None:
                rows = audit.page(p, match=where, before=around + AROUND + 1, limit=2 * AROUND + 1)
            else:
                rows = audit.page(p, match=where, before=_int(q.get("before")), limit=PAGE)
        return console.render(
            request,
            "audit.html",
            rows=rows,
            where=where,
            around=around,
            older=rows[-1]["id"] if len(rows) >= PAGE and around is None else None,
            principals=filter_choices(console)["principal"],
            endpoints=[*ENDPOINTS, *CONSOLE_ACTIONS],
        )

    async def verify(request: Request, session: Session) -> Response:
        try:
            verdict = await asyncio.to_thread(audit.verify, path())
        except WaveError as exc:
            return console.render(request, "fragments/refusal.html", status=409, message=str(exc))
        console.audit_action(session.subject, "console.audit.verify", 200 if verdict.ok else 409)
        return console.render(request, "fragments/audit_verdict.html", verdict=verdict)

    return [
        Route("/audit", console.access.page(index, role="admin"), methods=["GET"]),
        Route("/audit/verify", console.access.page(verify, role="admin"), methods=["POST"]),
    ]
