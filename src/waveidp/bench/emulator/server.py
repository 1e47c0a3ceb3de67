"""OpenAI-compatible HTTP face of the emulated engine (aiohttp): chat and text completions (SSE
or not, `n` choices, log probabilities, tool calls, JSON-schema output, vLLM's context-length
400s), embeddings, the Responses and Anthropic Messages routes (translated to a chat completion
by `waveidp.protocols`, as an engine would run them), models, health, Prometheus metrics, and
`/emulator/trace` with the server-side truth (arrival, first and last token times of every
finished request, on CLOCK_MONOTONIC). What each token says comes from `outputs`; when it
comes, from the scheduler."""

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
from waveidp.bench.emulator import outputs
from waveidp.bench.emulator.prometheus import EmulatedEngine, EngineMetrics
from waveidp.bench.emulator.scheduler import END, BatchScheduler, CapacityError, Sequence
from waveidp.bench.emulator.timing import StepTiming
from waveidp.errors import ApiError
from waveidp.protocols import anthropic as anthropic_api
from waveidp.protocols import responses as responses_api
from waveidp.protocols.chat import ChatStreamTranslator

STORED_RESPONSES = 1000  # responses kept for `GET /v1/responses/{id}` (vLLM kind), oldest dropped


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
        self.stored: dict[str, dict[str, Any]] = {}  # created responses by id (vLLM kind)

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
        return await self._openai(req, chat=True)

    async def completions(self, req: web.Request) -> web.StreamResponse:
        return await self._openai(req, chat=False)

    async def _openai(self, req: web.Request, *, chat: bool) -> web.StreamResponse:
        body = await _json_body(req)
        if isinstance(body, web.Response):
            return body
        answer = await self._generate(req, body, chat=chat)
        if isinstance(answer, dict):
            return _json(answer)
        return answer

    async def responses(self, req: web.Request) -> web.StreamResponse:
        """`POST /v1/responses`, as the chat completion it translates to (`waveidp.protocols`)."""
        body = await _json_body(req)
        if isinstance(body, web.Response):
            return body
        try:
            chat_body = responses_api.request_to_chat(body)
        except ApiError as err:
            return _error(400, err.message, "BadRequestError", err.param)
        if body.get("stream"):
            translator = responses_api.StreamFromChat(body)
            streamed = await self._generate(req, chat_body, chat=True, translator=translator)
            assert not isinstance(streamed, dict)
            return streamed
        answer = await self._generate(req, chat_body, chat=True)
        if not isinstance(answer, dict):
            return answer
        store = self.config.engine == "vllm" and body.get("store", True) is not False  # vLLM keeps them
        out = responses_api.answer_from_chat(answer, body, stored=store)
        if store:
            self.stored[out["id"]] = out
            while len(self.stored) > STORED_RESPONSES:
                self.stored.pop(next(iter(self.stored)))
        return _json(out)

    async def stored_response(self, req: web.Request) -> web.Response:
        found = self.stored.get(req.match_info["rid"])
        if found is None:
            return _error(404, f"Response with id '{req.match_info['rid']}' not found.", "NotFoundError")
        return _json(found)

    async def messages(self, req: web.Request) -> web.StreamResponse:
        """`POST /v1/messages`, as the chat completion it translates to; Anthropic-shaped errors."""
        asked = await _anthropic_request(req)
        if isinstance(asked, web.Response):
            return asked
        body, chat_body = asked
        if body.get("stream"):
            translator = anthropic_api.StreamFromChat(body)
            answer = await self._generate(req, chat_body, chat=True, translator=translator)
        else:
            answer = await self._generate(req, chat_body, chat=True)
        if isinstance(answer, dict):
            return _json(anthropic_api.answer_from_chat(answer, body))
        if answer.status >= 400 and isinstance(answer, web.Response) and isinstance(answer.body, bytes):
            return _anthropic_error(answer.status, orjson.loads(answer.body)["error"]["message"])
        return answer

    async def count_tokens(self, req: web.Request) -> web.Response:
        asked = await _anthropic_request(req)
        if isinstance(asked, web.Response):
            return asked
        _, chat_body = asked
        return _json({"input_tokens": max(1, approx_token_count(_prompt_text(chat_body, True) or ""))})

    async def embeddings(self, req: web.Request) -> web.Response:
        body = await _json_body(req)
        if isinstance(body, web.Response):
            return body
        if body.get("model") != self.config.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
        given = body.get("input")
        if isinstance(given, str) or (
            isinstance(given, list) and given and all(isinstance(x, int) for x in given)
        ):
            given = [given]
        if not isinstance(given, list) or not given:
            return _error(400, "'input' must be a string or a non-empty array", "BadRequestError", "input")
        dims = body.get("dimensions") or outputs.EMBEDDING_DIM
        if not isinstance(dims, int) or not 1 <= dims <= outputs.EMBEDDING_DIM:
            return _error(
                400,
                f"dimensions must be 1..{outputs.EMBEDDING_DIM} for this model",
                "BadRequestError",
                "dimensions",
            )
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return _error(
                400, "encoding_format must be float or base64", "BadRequestError", "encoding_format"
            )
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in given]
        tokens = sum(max(1, approx_token_count(t)) for t in texts)
        if max(approx_token_count(t) for t in texts) > self.config.max_model_len:
            return _error(400, _too_long(self.config.max_model_len, tokens), "BadRequestError", "input")
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": outputs.encode_embedding(outputs.embedding(t, dims), encoding),
            }
            for i, t in enumerate(texts)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return _json({"object": "list", "data": data, "model": self.config.model, "usage": usage})

    async def _generate(
        self,
        req: web.Request,
        body: dict[str, Any],
        *,
        chat: bool,
        translator: ChatStreamTranslator | None = None,
    ) -> web.StreamResponse | dict[str, Any]:
        """Check, schedule and answer one chat or text completion: the answer as a dict, or the
        stream already sent (through `translator` when another API asked), or an error."""
        arrived = time.perf_counter()
        cfg = self.config
        if body.get("model") != cfg.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
        prompt = _prompt_text(body, chat)
        if prompt is None:
            field = "messages" if chat else "prompt"
            return _error(400, f"'{field}' is required", "BadRequestError", field)
        requested = body.get("max_completion_tokens", body.get("max_tokens"))
        if requested is not None and (not isinstance(requested, int) or requested < 1):
            return _error(400, "max_tokens must be a positive integer", "BadRequestError", "max_tokens")
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1:
            return _error(400, "n must be a positive integer", "BadRequestError", "n")
        top = _top_logprobs(body, chat)
        if isinstance(top, web.Response):
            return top
        try:
            reply = outputs.plan_reply(body, chat=chat)
        except outputs.ReplyError as exc:
            return _error(400, str(exc), "BadRequestError", exc.param)
        prompt_tokens = max(1, approx_token_count(prompt))
        if prompt_tokens >= cfg.max_model_len or (
            requested and prompt_tokens + requested > cfg.max_model_len
        ):
            return _error(400, _too_long(cfg.max_model_len, prompt_tokens, requested), "BadRequestError")
        max_tokens = requested or max(1, cfg.max_model_len - prompt_tokens)
        min_tokens = int(body.get("min_tokens") or 0)
        if reply.length is not None:
            target = min(max_tokens, reply.length)
        elif body.get("ignore_eos"):
            target = max_tokens
        else:
            target = min(max_tokens, max(min_tokens, cfg.natural_output_tokens))
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
        answer = _Answer(cfg.model, seq, reply, chat, n, top)
        try:
            if body.get("stream"):
                opts = body.get("stream_options") or {}
                usage = bool(opts.get("include_usage")) or translator is not None
                return await self._stream(req, answer, usage, translator)
            return await self._whole(answer)
        finally:  # normal end, a failed write, or the handler cancelled because the client went away
            self.scheduler.abort(seq)

    async def _whole(self, a: _Answer) -> dict[str, Any]:
        n = 0
        while (item := await a.seq.queue.get()) is not END:
            n = int(item)
        reason = a.reply.finish(n, a.seq.finish_reason or "length")
        choices = [a.whole_choice(k, n, reason) for k in range(a.n)]
        return {
            "id": a.rid,
            "object": "chat.completion" if a.chat else "text_completion",
            "created": int(time.time()),
            "model": a.model,
            "choices": choices,
            "usage": a.usage(),
        }

    async def _stream(
        self, req: web.Request, a: _Answer, include_usage: bool, translator: ChatStreamTranslator | None
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(req)
        seq = a.seq

        async def write(data: bytes) -> None:
            await resp.write(translator.feed(data) if translator is not None else data)

        if a.chat:  # vLLM's first chunk: the role, empty content
            await write(a.chunk([a.role_delta(k) for k in range(a.n)]))
        while (item := await seq.queue.get()) is not END:
            i = int(item) - 1
            last = int(item) >= seq.max_tokens
            reason = a.reply.finish(int(item), seq.finish_as) if last else None
            data = a.chunk([a.token_delta(k, i, reason) for k in range(a.n)])
            if last:  # the final token, usage and [DONE] leave in one write, as one TCP segment
                data += (a.chunk([], a.usage()) if include_usage else b"") + b"data: [DONE]\n\n"
            await write(data)
            seq.last_write = time.perf_counter()
            if seq.first_write is None:
                seq.first_write = seq.last_write
        if seq.generated < seq.max_tokens:  # aborted: still end the stream cleanly
            await write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _scheduler(config: EmulatorConfig, on_finish: Callable[[Sequence], None]) -> BatchScheduler:
    """Timed by the sizing model, the engine's own scheduler, the one `wave size` simulates
    (llama-server's loop, or vLLM's paged one); otherwise the continuous-batching loop of
    `BatchScheduler`."""
    from waveidp.sizing import PerfModel

    if isinstance(config.timing, PerfModel) and config.engine == "llamacpp":
        from waveidp.bench.emulator.llama_server import LlamaServerScheduler

        return LlamaServerScheduler(config.timing, speed=config.speed, on_finish=on_finish)
    if isinstance(config.timing, PerfModel) and config.engine == "vllm":
        from waveidp.bench.emulator.engine_loop import PagedScheduler

        return PagedScheduler(
            config.timing, max_batch=config.max_batch, speed=config.speed, on_finish=on_finish
        )
    return BatchScheduler(config.timing, max_batch=config.max_batch, speed=config.speed, on_finish=on_finish)


class _Answer:
    """One request's answer being written: its choices' text (or tool call), log probabilities
    and usage, as whole choices or stream chunks."""

    def __init__(
        self, model: str, seq: Sequence, reply: outputs.Reply, chat: bool, n: int, top: int | None
    ) -> None:
        self.model = model
        self.seq = seq
        self.reply = reply
        self.chat = chat
        self.n = n
        self.top = top  # top log probabilities per token; None: no logprobs asked
        self.rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        self.head = orjson.dumps({"id": self.rid, "object": obj, "created": self.created, "model": model})[
            :-1
        ]

    def usage(self) -> dict[str, int]:
        completion = self.seq.generated * self.n
        return {
            "prompt_tokens": self.seq.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.seq.prompt_tokens + completion,
        }

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        extra = {"choices": choices, "usage": usage}
        return b"data: " + self.head + b"," + orjson.dumps(extra)[1:] + b"\n\n"

    def _tokens(self, k: int, n: int) -> list[str]:
        return [self.reply.piece(self.seq.id, i, k) for i in range(n)]

    def whole_choice(self, k: int, n: int, reason: str) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": k, "finish_reason": reason, "logprobs": None}
        tokens = self._tokens(k, n)
        text = "".join(tokens)
        if self.top is not None:
            choice["logprobs"] = (
                {"content": [outputs.chat_logprobs(t, self.top, i) for i, t in enumerate(tokens)]}
                if self.chat
                else outputs.completion_logprobs(tokens, self.top)
            )
        if not self.chat:
            choice["text"] = text
        elif self.reply.kind == "tool":
            call = {
                "id": self.reply.tool_id,
                "type": "function",
                "function": {"name": self.reply.tool_name, "arguments": text},
            }
            choice["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
        else:
            choice["message"] = {"role": "assistant", "content": text}
        return choice

    def role_delta(self, k: int) -> dict[str, Any]:
        delta: dict[str, Any] = {"role": "assistant", "content": ""}
        if self.reply.kind == "tool":  # the call's id and name come first, its arguments after
            delta = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": self.reply.tool_id,
                        "type": "function",
                        "function": {"name": self.reply.tool_name, "arguments": ""},
                    }
                ],
            }
        return {"index": k, "delta": delta, "logprobs": None, "finish_reason": None}

    def token_delta(self, k: int, i: int, reason: str | None) -> dict[str, Any]:
        token = self.reply.piece(self.seq.id, i, k)
        logprobs = None
        if self.top is not None:
            logprobs = (
                {"content": [outputs.chat_logprobs(token, self.top, i)]}
                if self.chat
                else outputs.completion_logprobs([token], self.top)
            )
        if not self.chat:
            return {"index": k, "text": token, "logprobs": logprobs, "finish_reason": reason}
        if self.reply.kind == "tool":
            delta: dict[str, Any] = {"tool_calls": [{"index": 0, "function": {"arguments": token}}]}
        else:
            delta = {"content": token}
        return {"index": k, "delta": delta, "logprobs": logprobs, "finish_reason": reason}


def _top_logprobs(body: dict[str, Any], chat: bool) -> int | web.Response | None:
    """How many top log probabilities per token were asked for (None: no logprobs)."""
    if chat:
        if not body.get("logprobs"):
            if body.get("top_logprobs"):
                return _error(400, "top_logprobs needs logprobs: true", "BadRequestError", "top_logprobs")
            return None
        top = body.get("top_logprobs") or 0
        param = "top_logprobs"
    else:
        top = body.get("logprobs")
        if top is None:
            return None
        param = "logprobs"
    if not isinstance(top, int) or isinstance(top, bool) or top < 0:
        return _error(400, f"{param} must be a non-negative integer", "BadRequestError", param)
    if top > outputs.MAX_LOGPROBS:
        return _error(
            400,
            f"Requested sample logprobs of {top}, which is greater than max allowed: {outputs.MAX_LOGPROBS}",
            "BadRequestError",
            param,
        )
    return top


def _too_long(limit: int, prompt: int, requested: int | None = None) -> str:
    """vLLM's 400 for a request that does not fit the context."""
    if requested is None or prompt >= limit:
        return (
            f"This model's maximum context length is {limit} tokens. However, your request has "
            f"{prompt} input tokens. Please reduce the length of the input messages."
        )
    return (
        f"'max_tokens' or 'max_completion_tokens' is too large: {requested}. This model's maximum "
        f"context length is {limit} tokens and your request has {prompt} input tokens "
        f"({requested} > {limit} - {prompt})."
    )


async def _json_body(req: web.Request, anthropic_errors: bool = False) -> dict[str, Any] | web.Response:
    try:
        body = orjson.loads(await req.read())
    except orjson.JSONDecodeError as exc:
        message = f"request body is not JSON: {exc}"
        return _anthropic_error(400, message) if anthropic_errors else _error(400, message, "BadRequestError")
    if not isinstance(body, dict):
        message = "request body must be a JSON object"
        return _anthropic_error(400, message) if anthropic_errors else _error(400, message, "BadRequestError")
    return body


async def _anthropic_request(req: web.Request) -> tuple[dict[str, Any], dict[str, Any]] | web.Response:
    """A Messages request and the chat request it translates to, or its 400 in Anthropic's shape."""
    body = await _json_body(req, anthropic_errors=True)
    if isinstance(body, web.Response):
        return body
    try:
        return body, anthropic_api.request_to_chat(body)
    except ApiError as err:
        return _anthropic_error(400, err.message)


def _json(obj: Any) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json")


def _anthropic_error(status: int, message: str) -> web.Response:
    """vLLM's Anthropic route answers errors in Anthropic's shape."""
    body = {
        "type": "error",
        "error": {"type": "invalid_request_error" if status < 500 else "api_error", "message": message},
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


EMULATOR = web.AppKey("emulator", Emulator)


def create_app(config: EmulatorConfig) -> web.Application:
    """The emulator as an aiohttp application (run it with `web.run_app` or an `AppRunner`)."""
    emu = Emulator(config)
    # A client that disconnects cancels its handler (whatever runner serves the app), so a request
    # waiting for KV, which writes nothing, is aborted at once instead of when a write would fail.
    # vLLM sets no body limit; a multimodal chat with a few photos is tens of MiB
    app = web.Application(client_max_size=1024**3, handler_args={"handler_cancellation": True})
    app[EMULATOR] = emu
    app.on_startup.append(emu.start)
    app.on_cleanup.append(emu.stop)
    app.router.add_get("/health", emu.health)
    app.router.add_get("/v1/models", emu.models)
    app.router.add_get("/metrics", emu.prometheus)
    app.router.add_get("/emulator/trace", emu.trace)
    app.router.add_post("/v1/chat/completions", emu.chat)
    app.router.add_post("/v1/completions", emu.completions)
    app.router.add_post("/v1/embeddings", emu.embeddings)
    # Both emulated kinds have Responses and Messages (as vLLM and this llama-server build do);
    # only vLLM keeps responses for retrieval.
    app.router.add_post("/v1/responses", emu.responses)
    app.router.add_post("/v1/messages", emu.messages)
    app.router.add_post("/v1/messages/count_tokens", emu.count_tokens)
    if config.engine == "vllm":
        app.router.add_get("/v1/responses/{rid}", emu.stored_response)
    return app
