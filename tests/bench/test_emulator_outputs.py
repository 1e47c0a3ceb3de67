"""What `wave emulate` answers, apart from when: JSON that validates against the schema asked for,
tool calls when tools are offered and asked for, embeddings (the routes themselves are driven by
the real SDKs in tests/clients)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import jsonschema
import orjson
import pytest

from waveidp.bench.emulator import outputs

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {"a": {"type": "string", "minLength": 9, "maxLength": 12}},
        "required": ["a"],
    },
    {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 5, "multipleOf": 4}}},
    {"type": "object", "properties": {"x": {"type": "number", "minimum": -3.5, "maximum": -1}}},
    {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 3},
    {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"k": {"const": 7}}}]},
    {"type": ["null", "boolean"]},
    {"enum": ["red", "green"]},
    {
        "$defs": {"node": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}}},
        "type": "object",
        "properties": {
            "nodes": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            "when": {"format": "date-time"},
        },
        "required": ["nodes", "when"],
        "additionalProperties": False,
    },
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {"properties": {"b": {"type": "boolean"}}},
        ]
    },
    {
        "type": "object",
        "properties": {"pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]}},
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_json_schema_output_validates(schema: dict[str, Any]) -> None:
    body = {"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}}
    reply = outputs.plan_reply(body, chat=True)
    assert reply.kind == "json" and reply.length is not None
    text = reply.text(0, reply.length)
    jsonschema.validate(orjson.loads(text), schema, format_checker=jsonschema.FormatChecker())
    assert (
        reply.finish(reply.length, "length") == "stop"
        and reply.finish(reply.length - 1, "length") == "length"
    )


TOOLS = [
    {
        "type": "function",
        "function": {"name": "a", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
    },
    {"type": "function", "function": {"name": "b"}},
]


@pytest.mark.parametrize(
    ("choice", "last_role", "want"),
    [
        ("auto", "user", "a"),  # asked a question with tools on offer: the first tool
        ("auto", "tool", None),  # after the tool's result: text
        ("required", "tool", "a"),
        ({"type": "function", "function": {"name": "b"}}, "user", "b"),
        ("none", "user", None),
    ],
)
def test_tool_calls_when_offered_and_asked_for(choice: Any, last_role: str, want: str | None) -> None:
    body = {"tools": TOOLS, "tool_choice": choice, "messages": [{"role": last_role, "content": "x"}]}
    reply = outputs.plan_reply(body, chat=True)
    if want is None:
        assert reply.kind == "text"
        return
    assert (reply.kind, reply.tool_name) == ("tool", want) and reply.tool_id
    assert isinstance(orjson.loads(reply.text(0, reply.length or 0)), dict)
    assert reply.finish(reply.length or 0, "stop") == "tool_calls"


def test_a_tool_choice_naming_no_offered_tool_is_refused() -> None:
    with pytest.raises(outputs.ReplyError) as exc:
        outputs.plan_reply(
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "z"}}}, chat=True
        )
    assert exc.value.param == "tool_choice"


def test_embeddings_are_unit_vectors_equal_for_equal_texts_and_base64_is_float32() -> None:
    a, b, again = outputs.embedding("cat"), outputs.embedding("dog"), outputs.embedding("cat")
    assert a == again and a != b and abs(sum(v * v for v in a) - 1) < 1e-9
    raw = base64.b64decode(outputs.encode_embedding(a, "base64"))  # type: ignore[arg-type]
    assert struct.unpack(f"<{len(a)}f", raw) == pytest.approx(a, rel=1e-6)
