"""OpenAI-compatible HTTP face of the emulated engine (aiohttp): chat and text completions (SSE
or not), models, health, Prometheus metrics, and `/emulator/trace` with the server-side truth
(arrival, first and last token times of every finished request, on CLOCK_MONOTONIC)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from waveidp.bench.datasets.tokens import approx_token_count
from waveidp.bench.emulator.prometheus import EmulatedEngine, EngineMetrics
from waveidp.bench.emulator.scheduler import END, BatchScheduler, CapacityError, Sequence
from waveidp.bench.emulator.timing import StepTiming

_WORDS = (
    " the",
    " wave",
    " of",
    " tokens",
    " moves",
    " through",
    " a",
    " batch",
    ",",
    " and",
    " every",
    " step",
    " costs",
    " time",
    ".",
)


@dataclass(frozen=True)
class EmulatorConfig:
    model: str
    timing: StepTiming
    engine: EmulatedEngine = "vllm"
    max_batch: int = 256
    speed: float = 1.0
    natural_output_tokens: int = 128
    max_model_len: int = 32768
    description: str = ""


def _error(status: int, message: str, type_: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": status}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _prompt_text(body: dict[str, Any], chat: bool) -> str | None:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        parts = []
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):
                parts += [c.get("text", "") for c in content if isinstance(c, dict)]
            elif isinstance(content, str):
                parts.append(content)
        return "\n".join(parts)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(str(p) for p in prompt)
    return prompt if isinstance(prompt, str) else None


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.scheduler = _scheduler(config, self._finished)
        self.metrics = EngineMetrics(config.engine, self.scheduler, config.model)
        self._task: asyncio.Task[None] | None = None

    def _finished(self, seq: Sequence) -> None:
        if seq.finish_reason != "abort":
            self.metrics.observe(seq)

    async def start(self, _app: web.Application | None = None) -> None:
        self._task = asyncio.create_task(self.scheduler.run())

    async def stop(self, _app: web.Application | None = None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- handlers -------------------------------------------------------------------------------

    async def health(self, _req: web.Request) -> web.Response:
        if self.config.engine == "llamacpp":
            return web.json_response({"status": "ok"})
        return web.Response(status=200)

    async def models(self, _req: web.Request) -> web.Response:
        data = [
            {
                "id": self.config.model,
                "object": "model",
                "created": 0,
                "owned_by": "wave-emulate",
                "max_model_len": self.config.max_model_len,
            }
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
        )

    async def prometheus(self, _req: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def trace(self, _req: web.Request) -> web.Response:
        rows = [
            {
                "id": s.id,
                "received": s.received,
                "admitted": s.admitted,
                "first_token": s.first_token,
                "last_token": s.last_token,
                "prompt_tokens": s.prompt_tokens,
                "output_tokens": s.generated,
                "finish_reason": s.finish_reason,
                "first_write": s.first_write,
                "last_write": s.last_write,
            }
            for s in self.scheduler.trace
        ]
        st = self.scheduler.stats
        stats = {k: getattr(st, k) for k in st.__dataclass_fields__}
        return web.Response(
            body=orjson.dumps({"requests": rows, "stats": stats}), content_type="application/json"
        )

    async def chat(self, req: web.Request) -> web.StreamResponse:
        return await self._complete(req, chat=True)

    async def completions(self, req: web.Request) -> web.StreamResponse:
        return await self._complete(req, chat=False)

    async def _complete(self, req: web.Request, *, chat: bool) -> web.StreamResponse:
        arrived = time.perf_counter()
        try:
            body = orjson.loads(await req.read())
        except orjson.JSONDecodeError as exc:
            return _error(400, f"request body is not JSON: {exc}", "BadRequestError")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "BadRequestError")
        if body.get("model") != self.config.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
        prompt = _prompt_text(body, chat)
        if prompt is None:
            field = "messages" if chat else "prompt"
            return _error(400, f"'{field}' is required", "BadRequestError", field)
        requested = body.get("max_completion_tokens", body.get("max_tokens"))
        if requested is not None and (not isinstance(requested, int) or requested < 1):
            return _error(400, "max_tokens must be a positive integer", "BadRequestError", "max_tokens")
        prompt_tokens = max(1, approx_token_count(prompt))
        max_tokens = requested or max(1, self.config.max_model_len - prompt_tokens)
        min_tokens = int(body.get("min_tokens") or 0)
        target = (
            max_tokens
            if body.get("ignore_eos")
            else min(max_tokens, max(min_tokens, self.config.natural_output_tokens))
        )
        seq = Sequence(
            received=arrived,
            prompt_tokens=prompt_tokens,
            max_tokens=target,
            finish_as="length" if target >= max_tokens else "stop",
        )
        try:
            self.scheduler.submit(seq)
        except CapacityError as exc:
            return _error(400, str(exc), "BadRequestError", "max_tokens")
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        try:
            if body.get("stream"):
                opts = body.get("stream_options") or {}
                return await self._stream(req, seq, rid, chat, bool(opts.get("include_usage")))
            return await self._whole(seq, rid, chat)
        finally:  # normal end, a failed write, or the handler cancelled because the client went away
            self.scheduler.abort(seq)

    async def _whole(self, seq: Sequence, rid: str, chat: bool) -> web.Response:
        n = 0
        while (item := await seq.queue.get()) is not END:
            n = int(item)
        text = "".join(_WORDS[(seq.id + i) % len(_WORDS)] for i in range(n))
        choice: dict[str, Any] = {"index": 0, "finish_reason": seq.finish_reason, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        body = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.config.model,
            "choices": [choice],
            "usage": self._usage(seq),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _usage(self, seq: Sequence) -> dict[str, int]:
        return {
            "prompt_tokens": seq.prompt_tokens,
            "completion_tokens": seq.generated,
            "total_tokens": seq.prompt_tokens + seq.generated,
        }

    async def _stream(
        self, req: web.Request, seq: Sequence, rid: str, chat: bool, include_usage: bool
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(req)
        created = int(time.time())
        model = self.config.model
        obj = "chat.completion.chunk" if chat else "text_completion"
        head = orjson.dumps({"id": rid, "object": obj, "created": created, "model": model})[:-1]

        def chunk(choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> bytes:
            extra = {"choices": [choice] if choice is not None else [], "usage": usage}
            return b"data: " + head + b"," + orjson.dumps(extra)[1:] + b"\n\n"

        if chat:  # vLLM's first chunk: the role, empty content
            await resp.write(
                chunk(
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                )
            )
        while (item := await seq.queue.get()) is not END:
            word = _WORDS[(seq.id + int(item)) % len(_WORDS)]
            last = int(item) >= seq.max_tokens
            reason = seq.finish_as if last else None
            if chat:
                data = chunk(
                    {"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": reason}
                )
            else:
                data = chunk({"index": 0, "text": word, "logprobs": None, "finish_reason": reason})
            if last:  # the final token, usage and [DONE] leave in one write, as one TCP segment
                data += (chunk(None, self._usage(seq)) if include_usage else b"") + b"data: [DONE]\n\n"
            await resp.write(data)
            seq.last_write = time.perf_counter()
            if seq.first_write is None:
                seq.first_write = seq.last_write
        if seq.generated < seq.max_tokens:  # aborted: still end the stream cleanly
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _scheduler(config: EmulatorConfig, on_finish: Callable[[Sequence], None]) -> BatchScheduler:
    """llama.cpp timed by the sizing model runs llama-server's own loop (the one `wave size`
    simulates); everything else the continuous-batching loop of `BatchScheduler`."""
    from waveidp.sizing import PerfModel

    if config.engine == "llamacpp" and isinstance(config.timing, PerfModel):
        from waveidp.bench.emulator.llama_server import LlamaServerScheduler

        return LlamaServerScheduler(config.timing, speed=config.speed, on_finish=on_finish)
    return BatchScheduler(config.timing, max_batch=config.max_batch, speed=config.speed, on_finish=on_finish)


EMULATOR = web.AppKey("emulator", Emulator)


def create_app(config: EmulatorConfig) -> web.Application:
    """The emulator as an aiohttp application (run it with `web.run_app` or an `AppRunner`)."""
    emu = Emulator(config)
    # A client that disconnects cancels its handler (whatever runner serves the app), so a request
    # waiting for KV, which writes nothing, is aborted at once instead of when a write would fail.
    app = web.Application(client_max_size=16 * 1024 * 1024, handler_args={"handler_cancellation": True})
    app[EMULATOR] = emu
    app.on_startup.append(emu.start)
    app.on_cleanup.append(emu.stop)
    app.router.add_get("/health", emu.health)
    app.router.add_get("/v1/models", emu.models)
    app.router.add_get("/metrics", emu.prometheus)
    app.router.add_get("/emulator/trace", emu.trace)
    app.router.add_post("/v1/chat/completions", emu.chat)
    app.router.add_post("/v1/completions", emu.completions)
    return app
