"""The gateway's errors beyond the ones its code raises where they happen (all `ApiError`): an
engine's own error answer in the same shape, the event that ends a stream broken after its first
byte, the 500 of a bug, and each of them in the shape of the client's API (OpenAI's, or
Anthropic's on `/v1/messages`)."""

from __future__ import annotations

import orjson

from waveidp.errors import ApiError
from waveidp.gateway.request_info import ANTHROPIC, Endpoint
from waveidp.protocols import anthropic, responses
from waveidp.security.audit import bounded_name


def upstream_error(data: bytes, status: int) -> ApiError:
    """An engine's error answer as an `ApiError`, message and type kept.

    Engines differ: llama.cpp sends an integer `code`, vLLM puts the fields at the top level, Ollama
    sends `{"error": "text"}`, Anthropic-shaped answers nest `error` with a `type`, a proxy in front
    may answer with HTML. Only called for status >= 400.
    """
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    err = parsed.get("error", parsed) if isinstance(parsed, dict) else None
    if isinstance(err, str):
        err = {"message": err}
    if not isinstance(err, dict):
        text = data[:500].decode(errors="replace").strip()
        err = {"message": f"the engine answered HTTP {status}" + (f": {text}" if text else "")}
    message, type_, param, code = (err.get(k) for k in ("message", "type", "param", "code"))
    if not isinstance(message, str):
        detail = err.get("detail")  # FastAPI's own answers (vLLM's 404 for a route it lacks)
        message = detail if isinstance(detail, str) else f"the engine answered HTTP {status}"
    return ApiError(
        status,
        message,
        type=type_ if isinstance(type_, str) else None,  # None: the status's type
        code=None if code is None else str(code),
        param=param if isinstance(param, str) else None,
    )


def error_json(endpoint: Endpoint | None, err: ApiError, request_id: str | None = None) -> bytes:
    """The error's body in the shape of the client's API."""
    if endpoint in ANTHROPIC:
        return anthropic.error_body(err, request_id)
    return err.json()


def sse_error_event(message: str, code: str) -> bytes:
    """What ends a chat or completions stream that broke after its first byte: an error event,
    then `[DONE]`."""
    return b"data: " + ApiError(502, message, code=code).json() + b"\n\ndata: [DONE]\n\n"


def stream_error(endpoint: Endpoint, message: str) -> bytes:
    """The event that ends a stream broken after its first byte, in the client's API."""
    if endpoint in ANTHROPIC:
        return anthropic.stream_error(message)
    if endpoint == "responses":
        return responses.stream_error(message)
    return sse_error_event(message, "upstream_stream_error")


def model_not_found(model: str, available: list[str]) -> ApiError:
    """The 404 for a model no backend serves, listing the ones that are."""
    return ApiError(
        404,
        f"model '{bounded_name(model)}' is not served here; available models: "
        f"{', '.join(available) or 'none'}",
        code="model_not_found",
        param="model",
    )


def internal_error(exc: Exception) -> ApiError:
    """What a bug in the gateway answers (the traceback goes to the gateway's log)."""
    return ApiError(
        500,
        f"internal gateway error ({type(exc).__name__}); see the gateway log",
        code="internal_error",
        type="api_error",
    )
