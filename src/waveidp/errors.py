"""One exception tree for every user-facing failure.

A `WaveError` prints as one line a person can act on: what went wrong, where, and how to fix
it. The CLI turns it into exit code 2 without a traceback; `ApiError`, the HTTP-facing one, is
answered by the gateway (and the admin API) with an OpenAI-style error body.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from starlette.responses import Response


class WaveError(Exception):
    """Base class: a user-facing error with an optional location and fix."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} ({self.fix})" if self.fix else text


class ConfigError(WaveError):
    """A configuration or data file is malformed; `where` is `file:line` and the field path."""


class NotFoundError(WaveError):
    """An id that names nothing; the message suggests the closest valid ids."""

    def __init__(self, kind: str, name: str, valid: Iterable[str], *, where: str | None = None) -> None:
        choices = sorted(valid)
        close = difflib.get_close_matches(name.lower(), choices, n=3, cutoff=0.4)
        fix = f"did you mean {', '.join(close)}?" if close else f"valid {kind} ids: {', '.join(choices[:12])}"
        if not close and len(choices) > 12:
            fix += ", ..."
        super().__init__(f"unknown {kind} '{name}'", where=where, fix=fix)
        self.kind = kind
        self.name = name
        self.suggestions = close


class InputError(WaveError):
    """A command-line value or input file that cannot be used (negative, absurd, wrong type)."""


# OpenAI's error `type` for each status, where the code that raises gives none.
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


class ApiError(WaveError):
    """An HTTP request the gateway refuses or cannot serve, answered with OpenAI's error body
    `{"error": {"message", "type", "param", "code"}}`: the one error class of the HTTP side (the
    gateway's 400/404/413/5xx, security's 401/403/429/431, the admin API's).

    `type` defaults from the status; `headers` go on the answer (`WWW-Authenticate`, `Retry-After`,
    `x-ratelimit-*`). A message never holds a secret: it names what was wrong, never the credential.
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

    def json(self) -> bytes:
        return orjson.dumps(self.body())

    def response(
        self, extra_headers: Mapping[str, str] | None = None, *, body: bytes | None = None
    ) -> Response:
        """The answer: this status, the OpenAI body (or `body`, the same error in another API's
        shape), this error's headers over `extra_headers` (the request id, `x-ratelimit-*`)."""
        from starlette.responses import Response

        headers = {**extra_headers, **self.headers} if extra_headers else self.headers
        content = self.json() if body is None else body
        return Response(content, self.status, headers=headers, media_type="application/json")
