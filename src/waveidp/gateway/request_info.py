"""Parse a request body once and keep only what routing and accounting need.

The body is forwarded as the original bytes; this module never re-serialises it unless the
gateway has to add `stream_options` (see `with_stream_usage`) or translate it for a backend that
lacks the route (`gateway/translation.py`).

The routes: `PATHS` holds each endpoint's path on the engines, `ROUTES` every path the gateway
answers (aliases included: `/rerank` as vLLM and llama-server also take it). The three OpenAI
routes of the hot path (`HOT`) are checked field by field; the others only as far as routing
needs (`model`, `stream`), the engine checks the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from waveidp.errors import ApiError
from waveidp.protocols.routes import ApiRoute

Endpoint = Literal["chat", "completions", "embeddings", ApiRoute]

PATHS: dict[Endpoint, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
    "count_tokens": "/v1/messages/count_tokens",
    "rerank": "/v1/rerank",
    "score": "/v1/score",
    "tokenize": "/tokenize",
    "detokenize": "/detokenize",
    "transcriptions": "/v1/audio/transcriptions",
    "translations": "/v1/audio/translations",
    "speech": "/v1/audio/speech",
}
ROUTES: dict[str, Endpoint] = {
    **{path: endpoint for endpoint, path in PATHS.items()},
    "/rerank": "rerank",
    "/v1/reranking": "rerank",
    "/score": "score",
}
HOT: frozenset[Endpoint] = frozenset({"chat", "completions", "embeddings"})
# Answered through chat completions where the backend lacks them (`gateway/translation.py`).
TRANSLATED: frozenset[Endpoint] = frozenset({"responses", "messages", "count_tokens"})
STREAMING: frozenset[Endpoint] = frozenset({"chat", "completions", "responses", "messages"})
# Anthropic's API: its errors, request-id header and auth (`x-api-key`) on these routes.
ANTHROPIC: frozenset[Endpoint] = frozenset({"messages", "count_tokens"})
MULTIPART: frozenset[Endpoint] = frozenset({"transcriptions", "translations"})
# The field whose text sizes the prompt (routing's estimate), per endpoint.
_PROMPT_FIELD: dict[Endpoint, str] = {
    "chat": "messages",
    "completions": "prompt",
    "embeddings": "input",
    "responses": "input",
    "messages": "messages",
    "count_tokens": "messages",
}
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
    endpoint: Endpoint,
    raw: bytes,
    session: str | None = None,
    content_type: str | None = None,
) -> RequestInfo:
    """What routing needs from a body whose shape `transport.JsonShape` has let through."""
    if endpoint in MULTIPART:
        return _parse_form(endpoint, raw, content_type)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_type")
    if endpoint not in HOT:
        return _parse_other(endpoint, body, raw, session)
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


def _parse_other(endpoint: Endpoint, body: dict[str, Any], raw: bytes, session: str | None) -> RequestInfo:
    """The routes beyond the hot three: `model` (optional for tokenize/detokenize, where the
    gateway picks its one model), `stream` where the route streams, the output limit."""
    model = body.get("model", "")
    if not isinstance(model, str) or (not model and endpoint not in ("tokenize", "detokenize")):
        raise ApiError(
            400, "'model' is required and must be a non-empty string", code="invalid_type", param="model"
        )
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", code="invalid_type", param="stream")
    limit = "max_output_tokens" if endpoint == "responses" else "max_tokens"
    max_tokens = body.get(limit)
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise ApiError(400, f"'{limit}' must be a positive integer", code="invalid_type", param=limit)
    if endpoint == "messages" and max_tokens is None:
        raise ApiError(400, "'max_tokens' is required", code="missing_field", param="max_tokens")
    field = _PROMPT_FIELD.get(endpoint)
    given = body.get(field) if field else None
    if field and given is None:
        raise ApiError(400, f"'{field}' is required", code="missing_field", param=field)
    text = _loose_text(given) if given is not None else ""
    if endpoint in ("messages", "count_tokens"):
        text = _loose_text(body.get("system")) + text
    elif endpoint == "responses":
        text = _loose_text(body.get("instructions")) + text
    tokens = max(1, (len(text) if field else len(raw)) // CHARS_PER_TOKEN)
    affinity = session if session is not None else _str_or_none(body.get("user"))
    if affinity is None and text:
        affinity = text[:AFFINITY_PREFIX_BYTES]
    return RequestInfo(endpoint, model, stream and endpoint in STREAMING, max_tokens, tokens, affinity, body)


def _loose_text(value: Any) -> str:
    """The text in a prompt of any of the APIs' shapes (strings, parts, items, blocks)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_loose_text(v) for v in value)
    if isinstance(value, dict):
        for key in ("text", "content", "output"):
            if key in value:
                return _loose_text(value[key])
    return ""


def _parse_form(endpoint: Endpoint, raw: bytes, content_type: str | None) -> RequestInfo:
    """A multipart/form-data upload (audio): its `model` and `stream` fields; the file passes."""
    boundary = _boundary(content_type)
    if boundary is None:
        raise ApiError(
            400, "the request must be multipart/form-data with a boundary", code="invalid_type", param="file"
        )
    fields = form_fields(raw, boundary, ("model", "stream"))
    model = fields.get("model")
    if not model:
        raise ApiError(400, "the form field 'model' is required", code="missing_field", param="model")
    # The answer is one JSON or text document; a streamed transcription is read whole as well.
    return RequestInfo(endpoint, model, False, None, max(1, len(raw) // 1000), None, {"model": model})


def _boundary(content_type: str | None) -> bytes | None:
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return None


def form_fields(raw: bytes, boundary: bytes, names: tuple[str, ...]) -> dict[str, str]:
    """The small text fields `names` of a multipart body, found without copying its file parts."""
    found: dict[str, str] = {}
    delimiter = b"--" + boundary
    for name in names:
        marker = b'name="' + name.encode() + b'"'
        at = raw.find(marker)
        while at != -1:
            start = raw.rfind(delimiter, 0, at)
            head_end = raw.find(b"\r\n\r\n", at)
            if start != -1 and head_end != -1 and b"\r\n\r\n" not in raw[start:at]:
                end = raw.find(b"\r\n" + delimiter, head_end)
                if end != -1:
                    found[name] = raw[head_end + 4 : end].decode("utf-8", "replace").strip()
                break
            at = raw.find(marker, at + 1)
    return found


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None
