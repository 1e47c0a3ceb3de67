"""Parse a request body once and keep only what routing and accounting need.

The body is forwarded as the original bytes; this module never re-serialises it unless the
gateway has to add `stream_options` (see `with_stream_usage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from waveidp.errors import ApiError
from waveidp.security.transport import json_depth_exceeds

Endpoint = Literal["chat", "completions", "embeddings"]

PATHS: dict[Endpoint, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}
_PROMPT_FIELD: dict[Endpoint, str] = {"chat": "messages", "completions": "prompt", "embeddings": "input"}
AFFINITY_PREFIX_BYTES = 256
CHARS_PER_TOKEN = 4  # a prompt-size estimate for routing only; accounting uses the server's usage


@dataclass(slots=True)
class RequestInfo:
    endpoint: Endpoint
    model: str
    stream: bool
    max_tokens: int | None
    prompt_tokens_est: int
    affinity: str | None
    body: dict[str, Any]

    def with_stream_usage(self) -> bytes:
        """The body asking for a final usage chunk (only called when the client did not set it)."""
        return orjson.dumps({**self.body, "stream_options": {"include_usage": True}})


def parse_request(
    endpoint: Endpoint, raw: bytes, session: str | None = None, max_depth: int = 32
) -> RequestInfo:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_type")
    # Counting brackets runs at C speed; only a body with enough of them can nest too deep.
    if raw.count(b"[") + raw.count(b"{") > max_depth and json_depth_exceeds(body, max_depth):
        raise ApiError(400, f"JSON nested deeper than {max_depth} levels", code="json_too_deep")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(
            400, "'model' is required and must be a non-empty string", code="invalid_type", param="model"
        )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", code="invalid_type", param="stream")
    if endpoint == "embeddings":
        stream = False
    max_tokens = None
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ApiError(400, f"'{name}' must be a positive integer", code="invalid_type", param=name)
        max_tokens = value
        break
    field = _PROMPT_FIELD[endpoint]
    prompt = body.get(field)
    text = _prompt_text(endpoint, prompt, field)
    affinity = session if session is not None else _str_or_none(body.get("user"))
    if affinity is None and text:
        affinity = text[:AFFINITY_PREFIX_BYTES]
    return RequestInfo(
        endpoint, model, stream, max_tokens, max(1, len(text) // CHARS_PER_TOKEN), affinity, body
    )


def _prompt_text(endpoint: Endpoint, prompt: Any, field: str) -> str:
    if endpoint == "chat":
        if not isinstance(prompt, list) or not prompt:
            raise ApiError(
                400, "'messages' must be a non-empty array of messages", code="invalid_type", param="messages"
            )
        parts: list[str] = []
        for i, m in enumerate(prompt):
            if not isinstance(m, dict):
                raise ApiError(
                    400, f"'messages[{i}]' must be an object", code="invalid_type", param=f"messages[{i}]"
                )
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
        return "\n".join(parts)
    if prompt is None:
        raise ApiError(400, f"'{field}' is required", code="missing_field", param=field)
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        if all(isinstance(p, str) for p in prompt):
            return "\n".join(prompt)
        if all(isinstance(p, int) for p in prompt) or all(isinstance(p, list) for p in prompt):
            return "x" * CHARS_PER_TOKEN * len(prompt)  # token ids: one token each
    raise ApiError(
        400,
        f"'{field}' must be a string or an array of strings or token ids",
        code="invalid_type",
        param=field,
    )


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None
