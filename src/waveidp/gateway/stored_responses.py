"""The Responses API's routes on a stored response: `GET /v1/responses/{id}` (and
`/input_items`), `DELETE /v1/responses/{id}`, `POST /v1/responses/{id}/cancel`.

Only backends that keep responses can answer them (vLLM: retrieve and cancel; not llama.cpp,
not a backend the gateway answers through chat completions). A response id names no model, so
the gateway asks each routable backend that may keep it, in order, and passes on the first answer
that is not a 404: the one that created it (across gateway workers too, with no map to share).
"""

from __future__ import annotations

import time

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from waveidp.errors import ApiError
from waveidp.gateway.errors import upstream_error
from waveidp.gateway.request_ids import CURRENT
from waveidp.gateway.state import Gateway
from waveidp.gateway.upstream import upstream_headers

_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=3)


async def forward_stored(gw: Gateway, request: Request) -> Response:
    """Authenticate, then pass the request to the first backend that knows the response."""
    await gw.guard.authenticate(request.headers)
    path = request.url.path
    now = time.monotonic()
    keepers = [
        b
        for b in gw.backends
        if b.routable(now)
        and (b.adapter.keeps_responses or b.adapter.routes is None)
        and "responses" not in b.lacks
    ]
    if not keepers:
        raise ApiError(
            404,
            f"no backend here keeps responses, so {request.method} {path} has nothing to find: "
            "llama.cpp stores none, and responses answered through chat completions are not stored",
            code="response_not_found",
        )
    headers_out = {"x-request-id": CURRENT.get()}
    body = await request.body()
    asked: list[str] = []  # what each backend said
    for b in keepers:
        headers = {**upstream_headers(b), **headers_out}
        try:
            async with await gw.send(
                b, request.method, b.root + path, params=request.query_params, data=body or None,
                headers=headers, timeout=_TIMEOUT,
            ) as resp:  # fmt: skip
                data = await resp.read()
                if resp.status in (404, 405):  # not there, or no such route on that backend
                    asked.append(f"{b.name}: {'not found' if resp.status == 404 else 'cannot do that'}")
                    continue
                if resp.status >= 400:
                    raise upstream_error(data, resp.status)
                ctype = resp.headers.get("content-type", "application/json")
                return Response(data, resp.status, headers={"x-wave-backend": b.name}, media_type=ctype)
        except (aiohttp.ClientError, TimeoutError) as exc:
            asked.append(f"{b.name}: {type(exc).__name__}")
            continue
    raise ApiError(
        404,
        f"no backend here answered {request.method} {path} for response '{request.path_params['rid']}' "
        f"({'; '.join(asked)})",
        code="response_not_found",
    )
