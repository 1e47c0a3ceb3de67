"""The refusals security makes (401, 403), and the OpenAI error shape on a FastAPI app.

Every refusal is a `waveidp.errors.ApiError`. Messages never contain a secret: they name what was
wrong (missing key, unknown key, model not allowed) and never echo the credential.
"""

from __future__ import annotations

from typing import Any

from waveidp.errors import ApiError


def unauthorized(what: str, code: str = "invalid_api_key") -> ApiError:
    return ApiError(
        401, what, type="authentication_error", code=code, headers={"WWW-Authenticate": 'Bearer realm="wave"'}
    )


def forbidden(what: str, *, param: str | None = None, code: str = "model_not_allowed") -> ApiError:
    return ApiError(403, what, type="permission_error", code=code, param=param)


def install_handlers(app: Any) -> None:
    """Answer `ApiError`s and request-validation errors of a FastAPI app in the OpenAI error shape."""
    from fastapi.exceptions import RequestValidationError

    async def on_api_error(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_invalid(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = (
            f"{param}: {first.get('msg', 'invalid')}" if param else str(first.get("msg", "invalid request"))
        )
        return ApiError(400, message, code="invalid_request", param=param).response()

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
