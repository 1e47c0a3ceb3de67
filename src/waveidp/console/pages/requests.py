"""Requests (admin): the last requests from the audit log (every worker's, kept for good), each
joined by request id with what this process's `RecentRequests` ring adds: TTFT, streaming, the
error, and the router's decision (candidates, forecasts, tier, why the winner won)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waveidp.console.sessions import Session
from waveidp.gateway.recent import RecentRequest
from waveidp.security import audit

if TYPE_CHECKING:
    from waveidp.console.app import Console

PAGE = 100
FILTERS = ("principal", "model", "backend", "status")


@dataclass(frozen=True)
class RequestRow:
    id: int | None
    ts: float
    request_id: str | None
    principal: str
    endpoint: str | None
    model: str | None
    backend: str | None
    status: int
    tokens_in: int | None
    tokens_out: int | None
    latency_s: float | None
    ttft_s: float | None = None
    stream: bool | None = None
    error: str | None = None
    decision: dict[str, Any] | None = None
    in_memory: bool = False  # this process still holds its record (TTFT, stream, error, decision)


def decision_of(recent: RecentRequest | None) -> dict[str, Any] | None:
    """The router's decision as plain data, when the record carries one (`RequestRecord.decision`:
    a ranking whose `trace()` is a `RouteTrace`)."""
    decision = getattr(recent.record, "decision", None) if recent is not None else None
    trace = decision.trace() if decision is not None and hasattr(decision, "trace") else None
    return trace.to_dict() if trace is not None else None


def join(rows: list[dict[str, Any]], ring: dict[str, RecentRequest]) -> list[RequestRow]:
    out = []
    for r in rows:
        recent = ring.get(r["request_id"]) if r.get("request_id") else None
        rec = recent.record if recent is not None else None
        out.append(
            RequestRow(
                id=r["id"],
                ts=r["ts"],
                request_id=r.get("request_id"),
                principal=r["principal"],
                endpoint=r.get("endpoint"),
                model=r.get("model"),
                backend=r.get("backend"),
                status=r["status"],
                tokens_in=r.get("tokens_in"),
                tokens_out=r.get("tokens_out"),
                latency_s=r.get("latency_s"),
                ttft_s=rec.ttft_s if rec is not None else None,
                stream=rec.stream if rec is not None else None,
                error=rec.error if rec is not None else None,
                decision=decision_of(recent),
                in_memory=recent is not None,
            )
        )
    return out


def from_ring(ring: list[RecentRequest], where: audit.AuditFilter) -> list[RequestRow]:
    """Without an audit log: the ring alone (this process's last requests)."""
    out = []
    for e in ring:
        rec = e.record
        if where.principal and e.principal != where.principal:
            continue
        if where.model and rec.model != where.model:
            continue
        if where.backend and rec.backend != where.backend:
            continue
        if where.status and str(rec.status)[0] != where.status[0]:
            continue
        out.append(
            RequestRow(
                id=None,
                ts=e.ts,
                request_id=e.request_id,
                principal=e.principal,
                endpoint=rec.endpoint,
                model=rec.model,
                backend=rec.backend,
                status=rec.status,
                tokens_in=rec.prompt_tokens,
                tokens_out=rec.completion_tokens,
                latency_s=rec.duration_s,
                ttft_s=rec.ttft_s,
                stream=rec.stream,
                error=rec.error,
                decision=decision_of(e),
                in_memory=True,
            )
        )
        if len(out) >= PAGE:
            break
    return out


def filter_choices(console: Console) -> dict[str, list[str]]:
    """Suggestions for the filters from what the gateway knows now (the log's distinct values would
    cost a scan of all of it); any other value can be typed."""
    keys = console.security.keys
    names = [k.name for k in keys.list(include_revoked=True)] if keys is not None else []
    return {
        "principal": ["default", *sorted(set(names))],
        "model": console.gw.models(),
        "backend": sorted(b.name for b in console.gw.backends),
    }


def routes(console: Console) -> list[Route]:
    async def index(request: Request, session: Session) -> Response:
        q = request.query_params
        where = audit.AuditFilter(**{f: (q.get(f) or None) for f in FILTERS}, requests_only=True)
        before = q.get("before")
        path = console.security.audit_where
        recent = console.gw.recent
        if audit.readable(path):
            rows = audit.page(
                path, match=where, before=int(before) if before and before.isdigit() else None, limit=PAGE
            )
            shown = join(rows, recent.by_id() if recent else {})
            source = "audit log"
        else:
            rows = []
            shown = from_ring(list(recent.newest_first()) if recent else [], where)
            source = "this process's last requests (auditing is off)"
        older = rows[-1]["id"] if len(rows) >= PAGE else None
        return console.render(
            request,
            "requests.html",
            rows=shown,
            where=where,
            choices=filter_choices(console),
            older=older,
            source=source,
            statuses=["2xx", "4xx", "5xx"],
        )

    return [Route("/requests", console.access.page(index, role="admin"), methods=["GET"])]
