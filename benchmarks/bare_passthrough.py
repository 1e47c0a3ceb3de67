"""The floor a Python gateway stands on: a raw ASGI app under uvicorn (uvloop + httptools, no access
log) that passes each POST to one upstream with one pooled aiohttp client call and returns its
answer, streams relayed chunk by chunk. No auth, routing, metrics or accounting.

    python benchmarks/bare_passthrough.py --port 9000 --upstream http://127.0.0.1:8000
    python benchmarks/bare_passthrough.py --port 9000 --fixed   # no upstream: a fixed body

`gateway_overhead.py` runs it as the `bare` path (the plain aiohttp pass-through every gateway is
compared with) and, with `--fixed`, as the cost of uvicorn alone.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import aiohttp
import uvicorn

STREAM_RE = re.compile(rb'"stream":\s*true')
FIXED = b'{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"total_tokens":1}}'


def make_app(upstream: str | None, stream_upstream: str | None = None) -> Any:
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict, receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while (msg := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if session is not None:
                await session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        if upstream is None:
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(FIXED)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": FIXED})
            return
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                auto_decompress=False,
                headers={"content-type": "application/json"},
            )
        base = stream_upstream if stream_upstream and STREAM_RE.search(body) else upstream
        async with session.post(base + scope["path"], data=body) as r:
            ctype = r.headers.get("content-type", "application/json").encode()
            if ctype.startswith(b"text/event-stream"):
                await send(
                    {"type": "http.response.start", "status": r.status, "headers": [(b"content-type", ctype)]}
                )
                async for chunk in r.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            data = await r.read()
            headers = [(b"content-type", ctype), (b"content-length", str(len(data)).encode())]
            await send({"type": "http.response.start", "status": r.status, "headers": headers})
            await send({"type": "http.response.body", "body": data})

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", help="base URL the POSTs go to")
    ap.add_argument("--stream-upstream", help='base URL for bodies with "stream":true (else --upstream)')
    ap.add_argument("--fixed", action="store_true", help="answer a fixed body, no upstream")
    args = ap.parse_args()
    if not args.fixed and not args.upstream:
        ap.error("give --upstream URL or --fixed")
    uvicorn.run(
        make_app(
            None if args.fixed else args.upstream.rstrip("/"),
            args.stream_upstream.rstrip("/") if args.stream_upstream else None,
        ),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
