"""Chat completions as the other APIs read them: a complete answer's first choice, and a stream of
chat chunks turned into calls on a `ChatStreamTranslator` (text, reasoning, tool-call pieces, the
finish reason, usage, the end), whose subclasses write the other API's events."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from waveidp.protocols.sse import DONE, payloads


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as chat completions carry it


@dataclass
class ChatAnswer:
    """The first choice of a chat completion, with what the other APIs keep of it."""

    id: str
    model: str
    text: str
    reasoning: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    stop: str | None  # the stop sequence that ended it, where the engine says (vLLM's stop_reason)
    usage: dict[str, Any]


def read_answer(answer: dict[str, Any]) -> ChatAnswer:
    """A chat completion answer (a dict) read into a `ChatAnswer`."""
    choices = answer.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    calls = [
        ToolCall(
            str(c.get("id") or new_id("call_")),
            str((c.get("function") or {}).get("name") or ""),
            str((c.get("function") or {}).get("arguments") or ""),
        )
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    stop = choice.get("stop_reason")
    usage = answer.get("usage")
    return ChatAnswer(
        id=str(answer.get("id") or new_id("chatcmpl-")),
        model=str(answer.get("model") or ""),
        text=_text(message.get("content")),
        reasoning=_text(message.get("reasoning_content") or message.get("reasoning")),
        tool_calls=calls,
        finish_reason=choice.get("finish_reason"),
        stop=stop if isinstance(stop, str) else None,
        usage=usage if isinstance(usage, dict) else {},
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def usage_counts(usage: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, cached prompt) tokens of a chat `usage` object."""
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return (
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(cached or 0),
    )


def tool_arguments(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as an object (what Anthropic's `input` holds); text that is not a
    JSON object is kept under `"arguments"` rather than lost."""
    try:
        parsed = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


@dataclass
class StreamedTool:
    """A tool call being streamed: chat sends its id and name first, then pieces of arguments."""

    index: int
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class ChatStreamTranslator:
    """Reads a chat-completions SSE stream (bytes of complete events, as they come) and calls the
    `on_*` hooks, which return the other API's events as bytes. `close()` after the last bytes:
    the stream's end, or `error` when it broke."""

    def __init__(self) -> None:
        self.model = ""
        self.chat_id = ""
        self.finish_reason: str | None = None
        self.stop: str | None = None
        self.usage: dict[str, Any] = {}
        self.done = False
        self.tools: dict[int, StreamedTool] = {}

    def feed(self, events: bytes) -> bytes:
        out: list[bytes] = []
        for chunk in payloads(events):
            if chunk is DONE or chunk == DONE:
                if not self.done:
                    self.done = True
                    out.append(self.on_done())
                continue
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:  # an engine's error event inside the stream
                err = chunk["error"]
                message = err.get("message") if isinstance(err, dict) else str(err)
                out.append(self.on_error(str(message or "the engine reported an error")))
                self.done = True
                continue
            self.model = self.model or str(chunk.get("model") or "")
            self.chat_id = self.chat_id or str(chunk.get("id") or "")
            if isinstance(chunk.get("usage"), dict):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    out.append(self._choice(choice))
        return b"".join(out)

    def _choice(self, choice: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(self.on_reasoning(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(self.on_text(content))
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            index = int(call.get("index") or 0)
            fn = call.get("function") or {}
            tool = self.tools.get(index)
            if tool is None:
                tool = self.tools[index] = StreamedTool(
                    index, str(call.get("id") or new_id("call_")), str(fn.get("name") or "")
                )
                out.append(self.on_tool_start(tool))
            piece = fn.get("arguments")
            if isinstance(piece, str) and piece:
                tool.arguments.append(piece)
                out.append(self.on_tool_arguments(tool, piece))
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
            stop = choice.get("stop_reason")
            self.stop = stop if isinstance(stop, str) else None
        return b"".join(out)

    def close(self, error: str | None = None) -> bytes:
        """The events that end the stream: an error event when it broke (or never ended)."""
        if error is not None:
            return self.on_error(error)
        if not self.done:
            return self.on_error("the engine ended the stream early")
        return b""

    # What a subclass writes for each part of the stream.
    def on_text(self, text: str) -> bytes:
        raise NotImplementedError

    def on_reasoning(self, text: str) -> bytes:
        raise NotImplementedError

    def on_tool_start(self, tool: StreamedTool) -> bytes:
        raise NotImplementedError

    def on_tool_arguments(self, tool: StreamedTool, piece: str) -> bytes:
        raise NotImplementedError

    def on_done(self) -> bytes:
        raise NotImplementedError

    def on_error(self, message: str) -> bytes:
        raise NotImplementedError


def image_part(url: str, detail: str | None = None) -> dict[str, Any]:
    """A chat content part with an image (a URL or a `data:` URL)."""
    image: dict[str, Any] = {"url": url}
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def function_tool(name: str, description: str | None, parameters: Any) -> dict[str, Any]:
    """A chat `tools` entry."""
    fn: dict[str, Any] = {"name": name, "parameters": parameters or {"type": "object", "properties": {}}}
    if description:
        fn["description"] = description
    return {"type": "function", "function": fn}


def assistant_message(text: str, calls: list[ToolCall]) -> dict[str, Any]:
    """A chat assistant message with its text and tool calls (content null when it has none)."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return message
