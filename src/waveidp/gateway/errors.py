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


def error_body(message: str, type: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def sse_error_event(message: str, code: str) -> bytes:
    """What ends a stream that broke after its first byte: an error event, then `[DONE]`."""
    return b"data: " + error_body(message, "upstream_error", code) + b"\n\ndata: [DONE]\n\n"
