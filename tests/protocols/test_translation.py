"""The Responses and Messages translations on their own: requests to chat completions, chat answers
and chat streams back, what cannot be carried refused with a 400 naming the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from waveidp.errors import ApiError
from waveidp.protocols import anthropic, responses, sse


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return sse.encode(None, {"id": "chatcmpl-abc", "model": "m", "choices": choices, "usage": usage})


USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 5,
    "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 4},
}
# A chat stream as engines send it: role, text, a tool call in pieces, the finish, usage, [DONE].
CHAT_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
    chunk({}, finish="tool_calls"),
    chunk(None, usage=USAGE),
    b"data: [DONE]\n\n",
]


def events(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        name = next((line[7:].decode() for line in block.split(b"\n") if line.startswith(b"event: ")), None)
        data = sse.data_of(block)
        assert data is not None
        out.append((name, orjson.loads(data)))
    return out


def feed_all(translator: Any, pieces: list[bytes]) -> bytes:
    # one event per read, as a slow engine sends them, plus the close
    return b"".join(translator.feed(p) for p in pieces) + translator.close()


class TestAnthropic:
    def test_request_maps_system_images_tools_and_tool_results(self) -> None:
        body = {
            "model": "m",
            "max_tokens": 50,
            "system": [{"type": "text", "text": "be brief"}],
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u1"},
            "tools": [{"name": "f", "description": "does f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                        {"type": "text", "text": "and now?"},
                    ],
                },
            ],
        }
        chat = anthropic.request_to_chat(body)
        assert chat["messages"] == [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "42"},
            {"role": "user", "content": "and now?"},
        ]
        assert chat["tools"] == [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}, "description": "does f"},
            }
        ]
        assert (chat["tool_choice"], chat["parallel_tool_calls"]) == ("required", False)
        assert (chat["max_tokens"], chat["stop"], chat["user"]) == (50, ["END"], "u1")

    def test_unknown_block_is_a_400_naming_it(self) -> None:
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}
        with pytest.raises(ApiError) as exc:
            anthropic.request_to_chat(body)
        assert exc.value.status == 400 and exc.value.param == "messages[0].content[0]"

    def test_answer_with_reasoning_text_and_a_tool_call(self) -> None:
        chat = {
            "id": "chatcmpl-x1",
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {
                        "content": "ok",
                        "reasoning_content": "think",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a": 2}'}}],
                    },
                }
            ],
            "usage": USAGE,
        }
        out = anthropic.answer_from_chat(chat, {"model": "m"})
        assert out["id"] == "msg_x1" and out["stop_reason"] == "tool_use"
        assert out["content"] == [
            {"type": "thinking", "thinking": "think", "signature": ""},
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "c", "name": "f", "input": {"a": 2}},
        ]
        assert out["usage"] == {"input_tokens": 8, "output_tokens": 5, "cache_read_input_tokens": 4}

    @pytest.mark.parametrize(
        ("finish", "stop", "want"),
        [
            ("length", None, ("max_tokens", None)),
            ("stop", "END", ("stop_sequence", "END")),
            ("stop", None, ("end_turn", None)),
        ],
    )
    def test_stop_reasons(self, finish: str, stop: str | None, want: tuple) -> None:
        chat = {"choices": [{"finish_reason": finish, "stop_reason": stop, "message": {"content": "x"}}]}
        out = anthropic.answer_from_chat(chat, {"model": "m"})
        assert (out["stop_reason"], out["stop_sequence"]) == want

    def test_stream_is_blocks_of_text_then_tool_use_with_usage_at_the_end(self) -> None:
        got = events(feed_all(anthropic.StreamFromChat({"model": "m"}), CHAT_STREAM))
        assert [e["type"] for _, e in got] == [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        assert all(name == e["type"] for name, e in got)  # `event:` names the data's type
        assert got[5][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}
        assert (
            "".join(e["delta"].get("partial_json", "") for _, e in got if e["type"] == "content_block_delta")
            == '{"a": 1}'
        )
        assert got[-2][1]["delta"]["stop_reason"] == "tool_use"
        assert got[-2][1]["usage"]["output_tokens"] == 5

    def test_a_stream_cut_short_ends_with_an_error_event(self) -> None:
        t = anthropic.StreamFromChat({"model": "m"})
        out = t.feed(b"".join(CHAT_STREAM[:3])) + t.close()
        assert events(out)[-1] == (
            "error",
            {"type": "error", "error": {"type": "api_error", "message": "the engine ended the stream early"}},
        )

    def test_errors_in_anthropic_shape(self) -> None:
        body = orjson.loads(anthropic.error_body(ApiError(503, "no backend"), "req_1"))
        assert body == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "no backend"},
            "request_id": "req_1",
        }

    def test_count_tokens_asks_for_one_token(self) -> None:
        chat = anthropic.count_request(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        )
        assert chat["max_tokens"] == 1 and "stream" not in chat
        assert anthropic.count_from_chat({"usage": {"prompt_tokens": 9}}) == {"input_tokens": 9}


class TestResponses:
    def test_request_maps_input_items_tools_and_format(self) -> None:
        body = {
            "model": "m",
            "instructions": "be brief",
            "max_output_tokens": 20,
            "input": [
                {"role": "developer", "content": "rules"},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "see"},
                        {"type": "input_image", "image_url": "http://x/i.png"},
                    ],
                },
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "done"},
            ],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {
                "format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}
            },
            "reasoning": {"effort": "low"},
        }
        chat = responses.request_to_chat(body)
        assert chat["messages"] == [
            {"role": "system", "content": "be brief"},
            {"role": "system", "content": "rules"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": "http://x/i.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ]
        assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
        assert chat["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
        }
        assert (chat["max_tokens"], chat["reasoning_effort"]) == (20, "low")

    @pytest.mark.parametrize(
        ("extra", "param"),
        [
            ({"previous_response_id": "resp_1"}, "previous_response_id"),
            ({"tools": [{"type": "web_search"}]}, "tools"),
            ({"input": 5}, "input"),
        ],
    )
    def test_what_chat_cannot_carry_is_a_400(self, extra: dict, param: str) -> None:
        with pytest.raises(ApiError) as exc:
            responses.request_to_chat({"model": "m", "input": "hi", **extra})
        assert exc.value.status == 400 and exc.value.param == param

    def test_answer_is_a_message_and_function_calls(self) -> None:
        chat = {
            "id": "chatcmpl-z",
            "choices": [
                {
                    "finish_reason": "length",
                    "message": {
                        "content": "hi",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
                    },
                }
            ],
            "usage": USAGE,
        }
        out = responses.answer_from_chat(chat, {"model": "m", "max_output_tokens": 5})
        assert out["id"] == "resp_z" and out["object"] == "response"
        assert (out["status"], out["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
        assert [i["type"] for i in out["output"]] == ["message", "function_call"]
        assert out["output"][0]["content"][0]["text"] == "hi"
        assert out["output"][1] | {"id": "x"} == {
            "type": "function_call",
            "id": "x",
            "call_id": "c",
            "name": "f",
            "arguments": "{}",
            "status": "completed",
        }
        assert out["usage"]["input_tokens"] == 12 and out["usage"]["output_tokens"] == 5

    def test_stream_events_are_numbered_and_end_with_the_whole_response(self) -> None:
        got = events(feed_all(responses.StreamFromChat({"model": "m"}), CHAT_STREAM))
        kinds = [e["type"] for _, e in got]
        assert kinds == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert [e["sequence_number"] for _, e in got] == list(range(len(got)))
        final = got[-1][1]["response"]
        assert final["status"] == "completed" and final["usage"]["output_tokens"] == 5
        assert final["output"][0]["content"][0]["text"] == "Hello"
        assert final["output"][1]["arguments"] == '{"a": 1}'

    def test_events_split_anywhere_between_reads_still_translate(self) -> None:
        whole = b"".join(CHAT_STREAM)
        t = responses.StreamFromChat({"model": "m"})
        # the relay hands over complete events only; here they come one by one, then in one read
        one_by_one = [e for _, e in events(feed_all(t, CHAT_STREAM))]
        t2 = responses.StreamFromChat({"model": "m"})
        at_once = [e for _, e in events(t2.feed(whole) + t2.close())]
        strip = [
            {k: v for k, v in e.items() if k not in ("item_id", "item", "response", "part")}
            for e in one_by_one
        ]
        assert strip == [
            {k: v for k, v in e.items() if k not in ("item_id", "item", "response", "part")} for e in at_once
        ]

    def test_an_engine_error_inside_the_stream_is_an_error_event(self) -> None:
        t = responses.StreamFromChat({"model": "m"})
        out = t.feed(CHAT_STREAM[1] + b'data: {"error": {"message": "boom"}}\n\n') + t.close()
        assert events(out)[-1][1] | {"sequence_number": 0} == {
            "type": "error",
            "code": "upstream_stream_error",
            "message": "boom",
            "param": None,
            "sequence_number": 0,
        }
