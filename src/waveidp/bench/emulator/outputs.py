"""What the emulated engine says, apart from when: the text of each token, a tool call when tools
are offered and asked for, JSON that matches a requested schema, log probabilities, embeddings.
Deterministic (the same request gets the same answer), so tests can check the contract.

    reply = plan_reply(body, chat=True)   # text, a JSON document, or a tool call
    reply.length                          # tokens it has (None: as many as asked)
    reply.piece(seq_id, i)                # the i-th token's text
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Literal

import orjson

WORDS = (
    " the",
    " wave",
    " of",
    " tokens",
    " moves",
    " through",
    " a",
    " batch",
    ",",
    " and",
    " every",
    " step",
    " costs",
    " time",
    ".",
)
PIECE_CHARS = 4  # a structured output (JSON, tool arguments) is streamed this many characters a token
MAX_LOGPROBS = 20  # vLLM's default --max-logprobs
EMBEDDING_DIM = 256


class ReplyError(ValueError):
    """A request the engine refuses (400), naming the field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Reply:
    """The output of one request: free text (words, as long as asked), a JSON document, or a tool
    call, each cut into token-sized pieces."""

    kind: Literal["text", "json", "tool"]
    pieces: tuple[str, ...] = ()
    tool_name: str = ""
    tool_id: str = ""

    @property
    def length(self) -> int | None:
        """How many tokens it has; None for free text, which runs until stop or max_tokens."""
        return None if self.kind == "text" else len(self.pieces)

    def piece(self, seq_id: int, i: int, choice: int = 0) -> str:
        if self.kind == "text":
            return WORDS[(seq_id + 7 * choice + i) % len(WORDS)]
        return self.pieces[i] if i < len(self.pieces) else ""

    def text(self, seq_id: int, n: int, choice: int = 0) -> str:
        return "".join(self.piece(seq_id, i, choice) for i in range(n))

    def finish(self, generated: int, limited: str) -> str:
        """The finish reason after `generated` tokens (`limited`: the scheduler's own reason)."""
        if self.kind == "text" or generated < len(self.pieces):
            return limited if self.kind == "text" else "length"
        return "tool_calls" if self.kind == "tool" else "stop"


def _pieces(text: str) -> tuple[str, ...]:
    return tuple(text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)) or ("",)


def plan_reply(body: dict[str, Any], *, chat: bool) -> Reply:
    """What to answer `body` with: a tool call when tools are offered and the choice asks for one
    (`required`, a named function, or `auto` right after a user turn), JSON matching
    `response_format` (json_schema, json_object), else text."""
    if chat:
        call = _tool_call(body)
        if call is not None:
            return call
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise ReplyError("response_format.json_schema.schema must be an object", "response_format")
        return Reply("json", _pieces(orjson.dumps(schema_value(schema, schema)).decode()))
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return Reply("json", _pieces('{"text": "the wave of tokens"}'))
    return Reply("text")


def _tool_call(body: dict[str, Any]) -> Reply | None:
    tools = [
        t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type", "function") == "function"
    ]
    choice = body.get("tool_choice", "auto" if tools else "none")
    if not tools or choice == "none":
        return None
    functions = {str((t.get("function") or {}).get("name")): t.get("function") or {} for t in tools}
    if isinstance(choice, dict):
        name = str((choice.get("function") or {}).get("name"))
        if name not in functions:
            raise ReplyError(f"tool_choice names '{name}', which is not in tools", "tool_choice")
    elif choice == "required" or (choice == "auto" and _last_role(body) == "user"):
        name = next(iter(functions))
    elif choice == "auto":
        return None
    else:
        raise ReplyError("tool_choice must be none, auto, required or a named function", "tool_choice")
    schema = functions[name].get("parameters") or {"type": "object", "properties": {}}
    arguments = orjson.dumps(schema_value(schema, schema)).decode()
    digest = hashlib.sha256(orjson.dumps(body.get("messages"))).hexdigest()[:24]
    return Reply("tool", _pieces(arguments), tool_name=name, tool_id=f"chatcmpl-tool-{digest}")


def _last_role(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        role = messages[-1].get("role")
        return role if isinstance(role, str) else None
    return None


_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "email": "wave@example.com",
    "uri": "https://example.com/wave",
    "url": "https://example.com/wave",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "hostname": "example.com",
}


def schema_value(schema: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """A value that validates against the JSON Schema `schema` (refs resolved in `root`): every
    property, the least items, the lowest number a bound allows, the first of an enum."""
    if not isinstance(schema, dict) or depth > 32:
        return None
    if "$ref" in schema:
        return schema_value(_resolve(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return schema_value(schema[key][0], root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if isinstance(part, dict) and "$ref" in part else part
            if isinstance(part, dict):
                merged = {
                    **merged,
                    **part,
                    "properties": {**merged.get("properties", {}), **part.get("properties", {})},
                }
        return schema_value(merged, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: schema_value(sub, root, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        items = schema.get("items")
        if isinstance(schema.get("prefixItems"), list):
            return [schema_value(s, root, depth + 1) for s in schema["prefixItems"]]
        value = schema_value(items, root, depth + 1) if isinstance(items, dict) else "wave"
        return [value] * count if not schema.get("uniqueItems") else [value][:count]
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema)


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else []:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1 if low is None else low
    if low is not None and "exclusiveMinimum" in schema and "minimum" not in schema:
        value = low + (1 if integer else 0.5)
    if high is not None and value > high:
        value = high - (1 if integer and "exclusiveMaximum" in schema else 0)
    step = schema.get("multipleOf")
    if step:
        value = -(-value // step) * step
    return int(value) if integer else float(value)


def _string(schema: dict[str, Any]) -> str:
    text = _FORMATS.get(str(schema.get("format")), "wave")
    low = int(schema.get("minLength", 0))
    if len(text) < low:
        text = (text * (low // len(text) + 1))[:low]
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text


def chat_logprobs(token: str, top: int, i: int) -> dict[str, Any]:
    """One token's entry of a chat choice's `logprobs.content`."""
    first = round(-0.05 - 0.01 * (i % 7), 4)
    alternatives = [token, *[w for w in WORDS if w != token][: max(0, top - 1)]]
    return {
        "token": token,
        "logprob": first,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": t, "logprob": round(first - 1.5 * j, 4), "bytes": list(t.encode())}
            for j, t in enumerate(alternatives[:top])
        ],
    }


def completion_logprobs(tokens: list[str], top: int, offset: int = 0) -> dict[str, Any]:
    """A completions choice's `logprobs` for `tokens` (text offsets from `offset`)."""
    entries = [chat_logprobs(t, top, i) for i, t in enumerate(tokens)]
    offsets, at = [], offset
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {
        "tokens": tokens,
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{x["token"]: x["logprob"] for x in e["top_logprobs"]} for e in entries],
        "text_offset": offsets,
    }


def embedding(text: str, dimensions: int = EMBEDDING_DIM) -> list[float]:
    """A unit vector drawn from the text's hash: equal texts get equal vectors."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values += [b / 127.5 - 1.0 for b in block]
        counter += 1
    values = values[:dimensions]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def encode_embedding(vector: list[float], encoding: str) -> list[float] | str:
    """`float` (a list) or `base64` (little-endian float32, as OpenAI's SDK asks by default)."""
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector
