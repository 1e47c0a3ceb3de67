"""Refusals the gateway answers with an OpenAI-style error body.

Every refusal carries the HTTP status, the OpenAI `type`/`code`/`param` fields and any headers
(`WWW-Authenticate`, `Retry-After`, `x-ratelimit-*`). Messages never contain a secret: they name
what was wrong (missing key, unknown key, model not allowed) and never echo the credential.
"""

from __future__ import annotations

from typing import Any

import orjson

from waveidp.errors import WaveError

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class Refusal(WaveError):
    """A request the gateway refuses or cannot serve: `status`, and a body shaped like OpenAI's errors.

    The one error class of the HTTP side: the gateway raises it as `ApiError` (400, 404, 413,
    502-504), security as `Refusal` (401, 403, 429, 431). `type` defaults from the status.
    """

    def __init__(
        self,
        status: int,
        what: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(what)
        self.status = status
        self.type = type or ERROR_TYPES.get(status, "api_error")
        self.code = code
        self.param = param
        self.headers = dict(headers) if headers else {}

    @property
    def message(self) -> str:
        return self.what

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.what, "type": self.type, "param": self.param, "code": self.code}}


def error_body(message: str, type: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def unauthorized(what: str, code: str = "invalid_api_key") -> Refusal:
    return Refusal(
        401, what, type="authentication_error", code=code, headers={"WWW-Authenticate": 'Bearer realm="wave"'}
    )


def forbidden(what: str, *, param: str | None = None, code: str = "model_not_allowed") -> Refusal:
    return Refusal(403, what, type="permission_error", code=code, param=param)


def refusal_response(refusal: Refusal) -> Any:
    """The Starlette response for a refusal: its status, OpenAI body and headers."""
    from starlette.responses import Response

    return Response(
        orjson.dumps(refusal.body()), refusal.status, headers=refusal.headers, media_type="application/json"
    )


def install_handlers(app: Any) -> None:
    """Answer `Refusal`s and request-validation errors of a FastAPI app in the OpenAI error shape."""
    from fastapi.exceptions import RequestValidationError

    async def on_refusal(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, Refusal)
        return refusal_response(exc)

    async def on_invalid(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = (
            f"{param}: {first.get('msg', 'invalid')}" if param else str(first.get("msg", "invalid request"))
        )
        return refusal_response(Refusal(400, message, code="invalid_request", param=param))

    app.add_exception_handler(Refusal, on_refusal)
    app.add_exception_handler(RequestValidationError, on_invalid)
