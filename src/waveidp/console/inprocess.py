"""Call one of the gateway's own OpenAI endpoints from a console route, in this process, and relay
its answer (a stream included) to the browser: the request takes the real path (authentication,
limits, routing, failover, metrics, audit) without a second HTTP hop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message

_PASS_HEADERS = frozenset({b"content-type", b"x-wave-backend", b"retry-after"})
_END: Message = {"type": "wave.end"}


async def relay(
    endpoint: ASGIApp, path: str, body: bytes, authorization: str | None, request: Request
) -> Response:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if authorization:
        headers.append((b"authorization", authorization.encode("latin-1")))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": request.url.scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": request.scope.get("client"),
        "server": request.scope.get("server"),
    }
    queue: asyncio.Queue[Message] = asyncio.Queue()
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()  # returns once the browser goes away: the request is cancelled

    async def send(message: Message) -> None:
        await queue.put(message)

    async def run() -> None:
        try:
            await endpoint(scope, receive, send)
        finally:
            queue.put_nowait(_END)

    task = asyncio.create_task(run())
    start = await queue.get()
    if start["type"] != "http.response.start":
        task.cancel()
        return Response("the gateway gave no answer", status_code=502)
    out_headers = {k.decode(): v.decode("latin-1") for k, v in start.get("headers", []) if k in _PASS_HEADERS}

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                message = await queue.get()
                if message is _END:
                    return
                if message["type"] == "http.response.body":
                    if message.get("body"):
                        yield message["body"]
                    if not message.get("more_body", False):
                        return
        finally:
            if not task.done():
                task.cancel()

    return StreamingResponse(chunks(), status_code=start["status"], headers=out_headers)
