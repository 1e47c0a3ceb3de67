"""A small OpenAI-compatible engine for tests and benchmarks: configurable speed, slots and identity.

    python tests/gateway/fake_upstream.py --port 8001 --name fast --ttft 0.02 --itl 0.005 --slots 8

Timing: a request waits for one of `--slots`, then its first token after `--ttft` (+ `--prefill-per-token`
x prompt tokens), then one token every `--itl` seconds, stretched by `--batch-slowdown` per other running
request (a crude continuous-batching model). Answers say which upstream produced them (`--name`), so
tests can see routing and splicing. Exposes vLLM-named gauges on /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

MAX_TOKENS = 4096  # the most it generates, whatever a request asks (a context's worth)


def build(args: argparse.Namespace) -> web.Application:
    slots = asyncio.Semaphore(args.slots)
    state = {"running": 0, "waiting": 0, "requests": 0}
    models = args.model or ["fake-model"]

    def itl() -> float:
        return args.itl * (1 + args.batch_slowdown * max(0, state["running"] - 1))

    async def models_list(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": args.name} for m in models],
            }
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(request: web.Request) -> web.Response:
        text = (
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="{models[0]}"}} {state["running"]}\n'
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="{models[0]}"}} {state["waiting"]}\n'
        )
        return web.Response(text=text, content_type="text/plain")

    async def generate(request: web.Request, kind: str) -> web.StreamResponse:
        body = await request.json()
        state["requests"] += 1
        if body.get("model") not in models:
            return web.json_response(
                {
                    "error": {
                        "message": f"unknown model {body.get('model')}",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": None,
                    }
                },
                status=404,
            )
        n = int(body.get("max_tokens") or body.get("max_completion_tokens") or args.default_tokens)
        n = min(n, MAX_TOKENS)
        prompt = json.dumps(body.get("messages") or body.get("prompt") or "")
        prompt_tokens = max(1, len(prompt) // 4)
        stream = bool(body.get("stream"))
        usage_wanted = bool((body.get("stream_options") or {}).get("include_usage"))
        state["waiting"] += 1
        async with slots:
            state["waiting"] -= 1
            state["running"] += 1
            try:
                return await _answer(request, kind, body["model"], n, prompt_tokens, stream, usage_wanted)
            finally:
                state["running"] -= 1

    async def _answer(
        request: web.Request,
        kind: str,
        model: str,
        n: int,
        prompt_tokens: int,
        stream: bool,
        usage_wanted: bool,
    ) -> web.StreamResponse:
        await asyncio.sleep(args.ttft + args.prefill_per_token * prompt_tokens)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
        created = int(time.time())
        if not stream:
            if n > 1 and args.itl:
                await asyncio.sleep(itl() * (n - 1))
            text = " ".join([args.name] + ["tok"] * (n - 1))
            choice = (
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                if kind == "chat"
                else {"index": 0, "text": text, "finish_reason": "length"}
            )
            return web.json_response(
                {
                    "id": "cmpl-fake",
                    "object": "chat.completion" if kind == "chat" else "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        for i in range(n):
            if i and args.itl:
                await asyncio.sleep(itl())
            word = args.name if i == 0 else " tok"
            choice = (
                {"index": 0, "delta": {"content": word}, "finish_reason": None}
                if kind == "chat"
                else {"index": 0, "text": word, "finish_reason": None}
            )
            chunk = {
                "id": "cmpl-fake",
                "object": obj,
                "created": created,
                "model": model,
                "choices": [choice],
            }
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if usage_wanted:
            chunk = {
                "id": "cmpl-fake",
                "object": obj,
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        return await generate(request, "chat")

    async def completions(request: web.Request) -> web.StreamResponse:
        return await generate(request, "completions")

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))]
        return web.json_response(
            {
                "object": "list",
                "model": body.get("model"),
                "data": data,
                "usage": {"prompt_tokens": len(items), "total_tokens": len(items)},
            }
        )

    # Routes no engine here serves for real (no Whisper, TTS or reranker model on this machine):
    # enough of their shape to show the gateway passes them through as they are.
    async def transcriptions(request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except Exception as exc:  # a form it cannot parse: what an engine answers, a 400
            return web.json_response(
                {"error": {"message": f"bad form: {exc}", "type": "BadRequestError"}}, status=400
            )
        audio = form.get("file")
        size = len(audio.file.read()) if hasattr(audio, "file") else 0
        return web.json_response({"text": f"{args.name} heard {size} bytes as {form.get('model')}"})

    async def speech(request: web.Request) -> web.Response:
        body = await request.json()
        return web.Response(body=b"ID3" + str(body.get("input", "")).encode(), content_type="audio/mpeg")

    async def rerank(request: web.Request) -> web.Response:
        body = await request.json()
        docs = body.get("documents") or []
        results = [{"index": i, "relevance_score": 1.0 / (i + 1)} for i in range(len(docs))]
        return web.json_response({"id": "rerank-fake", "model": body.get("model"), "results": results})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "fake failure", "type": "server_error"}}, status=500)

    @web.middleware
    async def compress(request: web.Request, handler: Any) -> web.StreamResponse:
        """Like an engine behind a compressing proxy: gzip JSON whenever the client accepts it."""
        response: web.StreamResponse = await handler(request)
        if isinstance(response, web.Response) and response.content_type == "application/json":
            response.enable_compression()
        return response

    app = web.Application(middlewares=[compress] if args.gzip else [])
    app.router.add_get("/v1/models", models_list)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/chat/completions", fail if args.fail else chat)
    app.router.add_post("/v1/completions", fail if args.fail else completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_post("/v1/rerank", rerank)
    return app


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", default="fake")
    p.add_argument("--model", action="append")
    p.add_argument("--ttft", type=float, default=0.0)
    p.add_argument("--prefill-per-token", type=float, default=0.0)
    p.add_argument("--itl", type=float, default=0.0)
    p.add_argument("--slots", type=int, default=1024)
    p.add_argument("--batch-slowdown", type=float, default=0.0)
    p.add_argument("--default-tokens", type=int, default=16)
    p.add_argument("--fail", action="store_true", help="answer every generation with HTTP 500")
    p.add_argument("--gzip", action="store_true", help="gzip JSON answers when the client accepts it")
    return p.parse_args(argv)


if __name__ == "__main__":
    import uvloop

    a = parse()
    uvloop.install()
    web.run_app(
        build(a),
        host="127.0.0.1",
        port=a.port,
        access_log=None,
        print=None,
        handler_cancellation=True,
        shutdown_timeout=1,
    )
