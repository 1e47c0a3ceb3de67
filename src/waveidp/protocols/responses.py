"""OpenAI's Responses API (`POST /v1/responses`) to and from chat completions, for backends
without it. Stateless: `previous_response_id` and `conversation` are refused (400), as llama.cpp
does; `store` is accepted and nothing is stored.

What maps where: `instructions` becomes the first system message; `input` (a string, or items)
becomes messages: message items with their text and image parts (`developer` as `system`),
`function_call` items the assistant's `tool_calls`, `function_call_output` items `tool` messages;
`tools` of type function, `tool_choice`, `text.format` (`json_schema`, `json_object`) as
`response_format`, `max_output_tokens`, `reasoning.effort`, `top_logprobs` the chat ones. Back:
reasoning becomes a `reasoning` item, text a `message` item with one `output_text` part, each
tool call a `function_call` item; `length` makes the response `incomplete`
(`max_output_tokens`).
"""

from __future__ import annotations

import time
from typing import Any

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
    usage_counts,
)

# Request fields that mean the same in chat completions and are passed on as they are.
_SAME = ("model", "temperature", "top_p", "parallel_tool_calls", "user", "seed", "top_k", "stop")
# Request fields echoed in the response object.
_ECHO = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "temperature",
    "top_p",
    "user",
    "previous_response_id",
)


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, code="invalid_request", param=param)


def request_to_chat(body: dict[str, Any], *, stream_usage: bool = True) -> dict[str, Any]:
    """A Responses request as the chat completions request that answers it."""
    for name in ("previous_response_id", "conversation"):
        if body.get(name):
            raise _bad(
                f"'{name}' needs a backend that stores responses; this model's backend is answered "
                "through chat completions, which keeps no state: send the earlier turns in 'input'",
                name,
            )
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        messages.extend(_items(given))
    else:
        raise _bad("'input' must be a string or an array of input items", "input")
    if not messages:
        raise _bad("'input' holds no message", "input")
    chat: dict[str, Any] = {k: body[k] for k in _SAME if body.get(k) is not None}
    chat["messages"] = messages
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    for t in tools:
        if t.get("type") != "function":
            raise _bad(
                f"tool type '{t.get('type')}' needs OpenAI's hosted tools; only 'function' tools run here",
                "tools",
            )
    if tools:
        chat["tools"] = [
            function_tool(str(t.get("name")), t.get("description"), t.get("parameters")) for t in tools
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        chat["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": fmt.get("name") or "output", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    effort = (body.get("reasoning") or {}).get("effort") if isinstance(body.get("reasoning"), dict) else None
    if effort:
        chat["reasoning_effort"] = effort
    if body.get("top_logprobs"):
        chat["logprobs"] = True
        chat["top_logprobs"] = body["top_logprobs"]
    if body.get("stream"):
        chat["stream"] = True
        if stream_usage:
            chat["stream_options"] = {"include_usage": True}
    return chat


def _items(items: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    calls: list[ToolCall] = []  # consecutive function_call items make one assistant message
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad(f"input[{i}] must be an object", f"input[{i}]")
        kind = item.get("type", "message")
        if kind == "function_call":
            calls.append(
                ToolCall(
                    str(item.get("call_id") or item.get("id")),
                    str(item.get("name")),
                    str(item.get("arguments") or ""),
                )
            )
            continue
        if calls:
            out.append(assistant_message("", calls))
            calls = []
        if kind == "message":
            out.append(_message(item, i))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _parts_text(output)
            out.append({"role": "tool", "tool_call_id": str(item.get("call_id")), "content": text})
        elif kind == "reasoning":
            continue  # an earlier turn's reasoning is not sent back
        else:
            raise _bad(f"input item type '{kind}' is not supported here", f"input[{i}]")
    if calls:
        out.append(assistant_message("", calls))
    return out


def _parts_text(parts: Any) -> str:
    if isinstance(parts, list):
        return "".join(p.get("text", "") for p in parts if isinstance(p, dict))
    return "" if parts is None else str(parts)


def _message(item: dict[str, Any], i: int) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _bad(f"input[{i}].role must be user, assistant, system or developer", f"input[{i}].role")
    role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _bad(f"input[{i}].content must be a string or an array of parts", f"input[{i}].content")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image" and part.get("image_url"):
            parts.append(image_part(str(part["image_url"]), part.get("detail")))
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        else:
            raise _bad(f"content part type '{kind}' is not supported here", f"input[{i}].content[{j}]")
    if role != "user" or all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts if p["type"] == "text")}
    return {"role": role, "content": parts}


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    prompt, completion, cached = usage_counts(usage)
    details = usage.get("completion_tokens_details") or {}
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning or 0)},
        "total_tokens": prompt + completion,
    }


def response_object(
    request: dict[str, Any],
    *,
    rid: str,
    created: float,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    model: str,
    stored: bool = False,
) -> dict[str, Any]:
    """The `response` object: what was asked (echoed) and what came out."""
    text = request.get("text") if isinstance(request.get("text"), dict) else {"format": {"type": "text"}}
    obj: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": int(created),
        "status": status,
        "model": request.get("model") or model,
        "output": output,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "text": text,
        "store": stored,
        "usage": usage,
    }
    for name in _ECHO:
        obj.setdefault(name, request.get(name))
    return obj


def _status(finish: str | None) -> str:
    return "incomplete" if finish == "length" else "completed"


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if status == "completed"
        else [],
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def answer_from_chat(answer: dict[str, Any], request: dict[str, Any], stored: bool = False) -> dict[str, Any]:
    """A chat completion answer as the Responses answer (`stored`: kept for retrieval)."""
    a = read_answer(answer)
    output: list[dict[str, Any]] = []
    if a.reasoning:
        output.append(_reasoning_item(new_id("rs_"), a.reasoning))
    if a.text or not a.tool_calls:
        output.append(_message_item(new_id("msg_"), a.text))
    for call in a.tool_calls:
        output.append(_call_item(new_id("fc_"), call.id, call.name, call.arguments))
    return response_object(
        request,
        rid="resp_" + a.id.removeprefix("chatcmpl-"),
        created=time.time(),
        status=_status(a.finish_reason),
        output=output,
        usage=_usage(a.usage),
        model=a.model,
        stored=stored,
    )


class StreamFromChat(ChatStreamTranslator):
    """A chat completions stream as Responses events: `response.created` and `.in_progress`, per
    output item `output_item.added`, its deltas and `.done` events, then `response.completed` (or
    `.incomplete`) with the whole response; `error` when the stream broke."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__()
        self.request = request
        self.rid = new_id("resp_")
        self.created = time.time()
        self.seq = 0
        self.started = False
        self.output: list[dict[str, Any]] = []  # finished items
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.text: list[str] = []

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        data = {"type": name, **data, "sequence_number": self.seq}
        self.seq += 1
        return sse.encode(name, data)

    def _response(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        return response_object(
            self.request,
            rid=self.rid,
            created=self.created,
            status=status,
            output=self.output,
            usage=usage,
            model=self.model,
        )

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        return self._event("response.created", {"response": self._response("in_progress")}) + self._event(
            "response.in_progress", {"response": self._response("in_progress")}
        )

    def _add(self, item: dict[str, Any]) -> bytes:
        out = self._start() + self._finish_item()
        self.open = item
        self.text = []
        index = len(self.output)
        return out + self._event("response.output_item.added", {"output_index": index, "item": item})

    def _where(self) -> dict[str, Any]:
        assert self.open is not None
        return {"item_id": self.open["id"], "output_index": len(self.output)}

    def _finish_item(self) -> bytes:
        item, self.open = self.open, None
        if item is None:
            return b""
        text = "".join(self.text)
        where = {"item_id": item["id"], "output_index": len(self.output)}
        out = b""
        if item["type"] == "message":
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out += self._event(
                "response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []}
            )
            out += self._event("response.content_part.done", {**where, "content_index": 0, "part": part})
            done = _message_item(item["id"], text)
        elif item["type"] == "reasoning":
            out += self._event("response.reasoning_text.done", {**where, "content_index": 0, "text": text})
            done = _reasoning_item(item["id"], text)
        else:
            out += self._event(
                "response.function_call_arguments.done", {**where, "name": item["name"], "arguments": text}
            )
            done = _call_item(item["id"], item["call_id"], item["name"], text)
        out += self._event("response.output_item.done", {"output_index": len(self.output), "item": done})
        self.output.append(done)
        return out

    def on_reasoning(self, text: str) -> bytes:
        out = b""
        if self.open is None or self.open["type"] != "reasoning":
            out = self._add({"type": "reasoning", "id": new_id("rs_"), "summary": [], "content": []})
        self.text.append(text)
        return out + self._event(
            "response.reasoning_text.delta", {**self._where(), "content_index": 0, "delta": text}
        )

    def on_text(self, text: str) -> bytes:
        out = b""
        if self.open is None or self.open["type"] != "message":
            out = self._add(_message_item(new_id("msg_"), "", status="in_progress"))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += self._event(
                "response.content_part.added", {**self._where(), "content_index": 0, "part": part}
            )
        if not text:
            return out
        self.text.append(text)
        return out + self._event(
            "response.output_text.delta", {**self._where(), "content_index": 0, "delta": text, "logprobs": []}
        )

    def on_tool_start(self, tool: StreamedTool) -> bytes:
        return self._add(_call_item(new_id("fc_"), tool.id, tool.name, "", status="in_progress"))

    def on_tool_arguments(self, tool: StreamedTool, piece: str) -> bytes:
        self.text.append(piece)
        return self._event("response.function_call_arguments.delta", {**self._where(), "delta": piece})

    def on_done(self) -> bytes:
        out = self._start()
        if self.open is None and not self.output:  # an empty answer is still one (empty) message
            out += self.on_text("")
        out += self._finish_item()
        status = _status(self.finish_reason)
        name = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(name, {"response": self._response(status, _usage(self.usage))})

    def on_error(self, message: str) -> bytes:
        return self._event("error", {"code": "upstream_stream_error", "message": message, "param": None})


def stream_error(message: str) -> bytes:
    """The event that ends a Responses stream that broke (passed through from the engine)."""
    return sse.encode(
        "error", {"type": "error", "code": "upstream_stream_error", "message": message, "param": None}
    )
