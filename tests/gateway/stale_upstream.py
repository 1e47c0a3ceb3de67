"""An OpenAI-compatible upstream whose kept-alive connections go stale, or that resets every request.

    python tests/gateway/stale_upstream.py --port 8001 [--reset-completions]

Default: each connection answers exactly one request (advertising keep-alive, as llama-server does)
and is then reset when the next request arrives on it, before a byte of answer: what a client meets
when it reuses a pooled connection the engine has already given up. `--reset-completions`: every
chat completion is reset at once, on fresh connections too (a really broken backend); /health and
/v1/models still answer, so the backend stays in rotation until its breaker opens.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

MODEL = "m1"


def build(reset_completions: bool) -> web.Application:
    served: dict[int, object] = {}  # id(connection) -> connection, kept so ids are never reused
    counts = {"answered": 0, "stale_resets": 0, "resets": 0}

    def stale(request: web.Request) -> bool:
        conn = request.protocol
        if id(conn) in served:
            counts["stale_resets"] += 1
            return True
        served[id(conn)] = conn
        return False

    def reset(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()  # RST, nothing written
        return web.Response(status=500)  # never reaches the client

    async def health(request: web.Request) -> web.Response:
        if stale(request):
            return reset(request)
        return web.json_response({"status": "ok"})

    async def models(request: web.Request) -> web.Response:
        if stale(request):
            return reset(request)
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def counters(request: web.Request) -> web.Response:
        # fresh connection per call from the test (Connection: close), never counted as stale
        return web.json_response(counts, headers={"connection": "close"})

    async def chat(request: web.Request) -> web.StreamResponse:
        if stale(request):
            return reset(request)
        body = await request.json()
        if reset_completions:
            counts["resets"] += 1
            return reset(request)
        counts["answered"] += 1
        words = ["ok"] * int(body.get("max_tokens", 4))
        if not body.get("stream"):
            return web.json_response(
                {
                    "object": "chat.completion",
                    "model": MODEL,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": len(words)},
                }
            )
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for w in words:
            event = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w}}]}
            await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/counts", counters)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--reset-completions", action="store_true")
    args = ap.parse_args()
    web.run_app(build(args.reset_completions), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
