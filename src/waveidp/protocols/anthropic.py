"""Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) to and from chat
completions, for backends without it; and Anthropic's error shape, which clients of this route
read whoever answered.

What maps where: `system` becomes the first system message; text and image blocks become chat
content parts (base64 images as `data:` URLs); an assistant's `tool_use` blocks become its
`tool_calls`, a user's `tool_result` blocks `tool` messages before the rest of that turn; `tools`
and `tool_choice` (`auto`, `any` = required, `tool` = that function, `none`) the chat ones;
`stop_sequences` is `stop`, `metadata.user_id` is `user`. Back: reasoning becomes a `thinking`
block, text a `text` block, tool calls `tool_use` blocks; finish reasons `stop`, `length`,
`tool_calls` are `end_turn` (or `stop_sequence`), `max_tokens`, `tool_use`.
"""

from __future__ import annotations

from typing import Any

import orjson

from waveidp.errors import ApiError
from waveidp.protocols import sse
from waveidp.protocols.chat import (
    ChatStreamTranslator,
    StreamedTool,
    ToolCall,
    assistant_message,
    function_tool,
    image_part,
    new_id,
    read_answer,
    tool_arguments,
    usage_counts,
)

# Anthropic's error `type` for each status (its SDKs map statuses to exception classes themselves).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def error_body(err: ApiError, request_id: str | None = None) -> bytes:
    """`{"type": "error", "error": {"type", "message"}}`, Anthropic's shape of an `ApiError`."""
    kind = ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": err.message}}
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, code="invalid_request", param=param)


def request_to_chat(body: dict[str, Any], *, stream_usage: bool = True) -> dict[str, Any]:
    """A Messages request as the chat completions request that answers it. `stream_usage`: ask
    for the usage chunk when streaming (the engine accepts `stream_options`)."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _blocks_text(system, "system")})
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise _bad("'messages' must be a non-empty array", "messages")
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise _bad(f"messages[{i}] must be an object with role 'user' or 'assistant'", f"messages[{i}]")
        messages.extend(_turn(turn, f"messages[{i}]"))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if "max_tokens" in body:
        chat["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if isinstance(user, str):
        chat["user"] = user
    tools = body.get("tools")
    if tools:
        chat["tools"] = [
            function_tool(str(t.get("name")), t.get("description"), t.get("input_schema"))
            for t in tools
            if isinstance(t, dict) and t.get("name")
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in ("auto", "any", "none"):
            chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
        if choice.get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False
    if body.get("stream"):
        chat["stream"] = True
        if stream_usage:
            chat["stream_options"] = {"include_usage": True}
    return chat


def _blocks_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    raise _bad(f"'{where}' must be a string or an array of text blocks", where)


def _turn(turn: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """One Messages turn as chat messages: tool results first (as `tool` messages), then the rest."""
    role, content = turn["role"], turn.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _bad(f"'{where}.content' must be a string or an array of content blocks", f"{where}.content")
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image(block.get("source") or {}, f"{where}.content[{j}]"))
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                ToolCall(str(block.get("id") or new_id("toolu_")), str(block.get("name")), arguments)
            )
        elif kind == "tool_result":
            result = block.get("content")
            text = result if isinstance(result, str) else _blocks_text(result or [], f"{where}.content[{j}]")
            if block.get("is_error"):
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": text})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the engine's own reasoning of an earlier turn is not sent back
        else:
            raise _bad(f"content block type '{kind}' is not supported here", f"{where}.content[{j}]")
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        if text or calls:
            out.append(assistant_message(text, calls))
    elif parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "\n".join(p["text"] for p in parts) if only_text else parts})
    return out


def _image(source: dict[str, Any], where: str) -> dict[str, Any]:
    if source.get("type") == "base64":
        return image_part(f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}")
    if source.get("type") == "url":
        return image_part(str(source.get("url")))
    raise _bad("an image source must be base64 or url", f"{where}.source")


def count_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat request whose `usage.prompt_tokens` answers `count_tokens`: the same prompt, one
    token of output (chat completions has no way to count without generating)."""
    chat = request_to_chat({**body, "max_tokens": 1, "stream": False})
    chat["max_tokens"] = 1
    return chat


def count_from_chat(answer: dict[str, Any]) -> dict[str, Any]:
    prompt, _, _ = usage_counts(answer.get("usage") or {})
    return {"input_tokens": prompt}


def _stop(finish: str | None, stop: str | None) -> tuple[str, str | None]:
    if finish == "stop" and stop:
        return "stop_sequence", stop
    return STOP_REASONS.get(finish or "stop", "end_turn"), None


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt, completion, cached = usage_counts(usage)
    out = {"input_tokens": prompt - cached, "output_tokens": completion}
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def answer_from_chat(answer: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A chat completion answer as the Messages answer."""
    a = read_answer(answer)
    content: list[dict[str, Any]] = []
    if a.reasoning:
        content.append({"type": "thinking", "thinking": a.reasoning, "signature": ""})
    if a.text:
        content.append({"type": "text", "text": a.text})
    for call in a.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_arguments(call.arguments)}
        )
    reason, sequence = _stop(a.finish_reason, a.stop)
    return {
        "id": "msg_" + a.id.removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": request.get("model") or a.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": _usage(a.usage),
    }


class StreamFromChat(ChatStreamTranslator):
    """A chat completions stream as Messages events: `message_start`, a `content_block_*` run per
    block (thinking, text, each tool call), `message_delta` with the stop reason and usage,
    `message_stop`; `error` when the stream broke."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__()
        self.request_model = str(request.get("model") or "")
        self.started = False
        self.block = -1  # index of the open content block, -1 when none is open
        self.block_kind: str | None = None

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        message: dict[str, Any] = {
            "id": "msg_" + (self.chat_id.removeprefix("chatcmpl-") or new_id("")),
            "type": "message",
            "role": "assistant",
            "model": self.request_model or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse.encode("message_start", {"type": "message_start", "message": message})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._start() + self._close_block()
        self.block += 1
        self.block_kind = kind
        return out + sse.encode(
            "content_block_start",
            {"type": "content_block_start", "index": self.block, "content_block": block},
        )

    def _close_block(self) -> bytes:
        if self.block_kind is None:
            return b""
        self.block_kind = None
        return sse.encode("content_block_stop", {"type": "content_block_stop", "index": self.block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse.encode(
            "content_block_delta", {"type": "content_block_delta", "index": self.block, "delta": delta}
        )

    def on_reasoning(self, text: str) -> bytes:
        out = (
            b""
            if self.block_kind == "thinking"
            else self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        )
        return out + self._delta({"type": "thinking_delta", "thinking": text})

    def on_text(self, text: str) -> bytes:
        out = b"" if self.block_kind == "text" else self._open("text", {"type": "text", "text": ""})
        return out + self._delta({"type": "text_delta", "text": text})

    def on_tool_start(self, tool: StreamedTool) -> bytes:
        return self._open("tool", {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}})

    def on_tool_arguments(self, tool: StreamedTool, piece: str) -> bytes:
        return self._delta({"type": "input_json_delta", "partial_json": piece})

    def on_done(self) -> bytes:
        reason, sequence = _stop(self.finish_reason, self.stop)
        usage = _usage(self.usage)
        return (
            self._start()
            + self._close_block()
            + sse.encode(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": usage,
                },
            )
            + sse.encode("message_stop", {"type": "message_stop"})
        )

    def on_error(self, message: str) -> bytes:
        return stream_error(message)


def stream_error(message: str) -> bytes:
    """The event that ends a Messages stream that broke."""
    return sse.encode("error", {"type": "error", "error": {"type": "api_error", "message": message}})
