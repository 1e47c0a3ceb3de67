"""The gateway's errors beyond the ones its code raises where they happen (all `ApiError`): an
engine's own error answer in the same shape, the event that ends a stream broken after its first
byte, and the 500 of a bug."""

from __future__ import annotations

import orjson

from waveidp.errors import ApiError


def upstream_error_body(data: bytes, status: int) -> bytes:
    """An engine's error answer in OpenAI's error shape, message and type kept.

    Engines differ: llama.cpp sends an integer `code`, vLLM puts the fields at the top level, Ollama
    sends `{"error": "text"}`, a proxy in front may answer with HTML. Only called for status >= 400.
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
    return ApiError(
        status,
        message if isinstance(message, str) else f"the engine answered HTTP {status}",
        type=type_ if isinstance(type_, str) else None,  # None: the status's type
        code=None if code is None else str(code),
        param=param if isinstance(param, str) else None,
    ).json()


def sse_error_event(message: str, code: str) -> bytes:
    """What ends a stream that broke after its first byte: an error event, then `[DONE]`."""
    return b"data: " + ApiError(502, message, code=code).json() + b"\n\ndata: [DONE]\n\n"


def internal_error(exc: Exception) -> ApiError:
    """What a bug in the gateway answers (the traceback goes to the gateway's log)."""
    return ApiError(
        500,
        f"internal gateway error ({type(exc).__name__}); see the gateway log",
        code="internal_error",
        type="api_error",
    )
