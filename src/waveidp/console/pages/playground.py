"""Playground: chat with any routed model through the gateway, streamed, with TTFT, tokens/s and the
backend that answered; two models side by side on one prompt.

The browser posts to `/console/playground/chat` (CSRF header); the console sends the request
through the gateway's own `/v1/chat/completions` in this process (`inprocess.relay`) with the
caller's credential: for an admin the bootstrap key, for an OIDC user their own access token (their
models and limits apply). Model text is untrusted: playground.js puts it into the page as text
(`textContent`), never as HTML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waveidp.console.access import Refused
from waveidp.console.inprocess import relay
from waveidp.console.sessions import Session

if TYPE_CHECKING:
    from waveidp.console.app import Console

CHAT_PATH = "/v1/chat/completions"
MAX_TOKENS_CAP = 4096
RESERVED = frozenset({"model", "messages", "stream", "stream_options"})


def chat_body(data: Any, models: list[str]) -> dict[str, Any]:
    """The OpenAI request the playground sends, from what the page posted (checked here: a clear
    400 beats a confusing upstream error)."""
    if not isinstance(data, dict):
        raise Refused(400, "the playground sends a JSON object")
    model = data.get("model")
    if model not in models:
        raise Refused(400, f"model {str(model)[:80]!r} is not served here")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Refused(400, "write a prompt first")
    messages: list[dict[str, str]] = []
    system = data.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {}
    extra = data.get("extra")
    if isinstance(extra, dict):
        body.update({k: v for k, v in extra.items() if k not in RESERVED})
    max_tokens = data.get("max_tokens")
    if isinstance(max_tokens, int) and 1 <= max_tokens <= MAX_TOKENS_CAP:
        body["max_tokens"] = max_tokens
    temperature = data.get("temperature")
    if isinstance(temperature, int | float) and 0 <= temperature <= 2:
        body["temperature"] = temperature
    body.update(model=model, messages=messages, stream=True, stream_options={"include_usage": True})
    return body


def routes(console: Console) -> list[Route]:
    async def page(request: Request, session: Session) -> Response:
        models = console.gw.models()
        return console.render(request, "playground.html", models=models)

    async def chat(request: Request, session: Session) -> Response:
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise Refused(400, "the playground sends JSON") from None
        body = chat_body(data, console.gw.models())
        if session.method == "oidc":
            credential = session.access_token
            if not credential:
                raise Refused(409, "your identity provider gave no access token to call the models with")
        else:
            credential = console.options.bootstrap_key.reveal() if console.options.bootstrap_key else None
        endpoint = console.hot.get(CHAT_PATH) if console.hot else None
        if endpoint is None:
            raise Refused(503, "the gateway's chat endpoint is not available to the console")
        auth = f"Bearer {credential}" if credential else None
        return await relay(endpoint, CHAT_PATH, orjson.dumps(body), auth, request)

    return [
        Route("/playground", console.access.page(page), methods=["GET"]),
        Route("/playground/chat", console.access.page(chat), methods=["POST"]),
    ]
