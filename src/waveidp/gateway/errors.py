"""HTTP-facing errors with OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import orjson

from waveidp.errors import WaveError
from waveidp.security.refusals import ERROR_TYPES, Refusal, error_body

# One class for every refusal on the HTTP side; the gateway's code calls it ApiError.
ApiError = Refusal
__all__ = ["ApiError", "as_api_error", "error_body", "sse_error_event", "upstream_error_body"]


def as_api_error(exc: WaveError) -> ApiError:
    """The `ApiError` a WaveError stands for (only refusals carry an HTTP status)."""
    if isinstance(exc, ApiError):
        return exc
    raise TypeError(f"{type(exc).__name__} carries no HTTP status") from exc


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
    return error_body(
        message if isinstance(message, str) else f"the engine answered HTTP {status}",
        type_ if isinstance(type_, str) else ERROR_TYPES.get(status, "api_error"),
        None if code is None else str(code),
        param if isinstance(param, str) else None,
    )


def sse_error_event(message: str, code: str) -> bytes:
    """What ends a stream that broke after its first byte: an error event, then `[DONE]`."""
    return b"data: " + error_body(message, "upstream_error", code) + b"\n\ndata: [DONE]\n\n"
