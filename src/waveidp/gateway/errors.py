"""HTTP-facing errors with OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import orjson

from waveidp.errors import WaveError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    431: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ApiError(WaveError):
    """An error the gateway answers with `status` and an OpenAI-style body.

    The security hooks raise it too (401, 403, 429); `headers` carries e.g. `Retry-After`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "api_error")
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)


def as_api_error(exc: WaveError) -> ApiError:
    """An `ApiError` for our own errors and for `waveidp.security`'s `Refusal` (same fields)."""
    if isinstance(exc, ApiError):
        return exc
    status = getattr(exc, "status", None)
    if not isinstance(status, int):
        raise TypeError(f"{type(exc).__name__} carries no HTTP status") from exc
    return ApiError(
        status,
        exc.what,
        code=getattr(exc, "code", None) or "refused",
        param=getattr(exc, "param", None),
        type=getattr(exc, "type", None),
        headers=getattr(exc, "headers", None),
    )


def error_body(message: str, type: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


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
        type_ if isinstance(type_, str) else _TYPES.get(status, "api_error"),
        None if code is None else str(code),
        param if isinstance(param, str) else None,
    )


def sse_error_event(message: str, code: str) -> bytes:
    """What ends a stream that broke after its first byte: an error event, then `[DONE]`."""
    return b"data: " + error_body(message, "upstream_error", code) + b"\n\ndata: [DONE]\n\n"
