"""The official `openai` SDK, unchanged, against the gateway: every route it has for a local model,
over the real llama-server (passed through and translated) and `wave emulate` (vLLM's contract)."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from clients_support import EMU, EMU_CONTEXT, FAKE, KEY, LLAMA, TRANSLATED, Fleet

pytestmark = pytest.mark.engine
HI = [{"role": "user", "content": "Say hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "today's weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def client(fleet: Fleet) -> openai.OpenAI:
    return openai.OpenAI(base_url=fleet.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def test_models_list_passes_the_engines_fields_and_retrieve_finds_one(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {LLAMA, TRANSLATED, EMU, FAKE}
    assert models[EMU].model_extra["max_model_len"] == EMU_CONTEXT  # vLLM's own field, kept
    assert models[LLAMA].owned_by == "llamacpp" and models[LLAMA].model_extra["meta"]["n_vocab"] == 49152
    assert models[EMU].model_extra["backends"] == ["emu"]
    one = client.models.retrieve(EMU)
    assert one.id == EMU and one.model_extra["max_model_len"] == EMU_CONTEXT
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("gpt-9")
    assert exc.value.code == "model_not_found"


@pytest.mark.parametrize("model", [LLAMA, EMU])
def test_chat_plain_and_streamed_carry_a_request_id(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=HI, max_tokens=4)
    assert raw.request_id and raw.request_id.startswith("req_")
    assert raw.parse().choices[0].message.content
    stream = client.chat.completions.create(model=model, messages=HI, max_tokens=4, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text and stream.response.headers["x-request-id"].startswith("req_")


def test_a_request_id_the_client_sends_comes_back(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=EMU, messages=HI, max_tokens=2, extra_headers={"x-request-id": "trace-abc-123"}
    )
    assert raw.request_id == "trace-abc-123"
    junk = client.chat.completions.with_raw_response.create(
        model=EMU, messages=HI, max_tokens=2, extra_headers={"x-request-id": "bad id\twith spaces"}
    )
    assert junk.request_id != "bad id\twith spaces" and junk.request_id.startswith("req_")


def test_completions_and_embeddings(client: openai.OpenAI) -> None:
    for model in (LLAMA, EMU):
        assert client.completions.create(model=model, prompt="Once upon", max_tokens=3).choices[0].text
        # the SDK asks for base64 and decodes it: both engines answer that way
        vectors = client.embeddings.create(model=model, input=["a cat", "a dog"]).data
        assert len(vectors) == 2 and len(vectors[0].embedding) > 8


@pytest.mark.parametrize("model", [LLAMA, TRANSLATED, EMU])
def test_responses_plain_and_streamed(client: openai.OpenAI, model: str) -> None:
    r = client.responses.create(model=model, input="Say hi", max_output_tokens=8, instructions="Be brief.")
    assert r.object == "response" and r.output_text and r.usage.output_tokens > 0
    with client.responses.stream(model=model, input="Say hi", max_output_tokens=8) as stream:
        events = list(stream)  # the SDK's accumulating helper: every event must be complete
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    # cut at max_output_tokens, the response is `incomplete`, as OpenAI's API says it
    assert kinds[-1] in ("response.completed", "response.incomplete")
    final = events[-1].response
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and final.output_text == text and final.usage.output_tokens > 0


def test_a_backend_that_answers_responses_with_404_gets_it_translated(client: openai.OpenAI) -> None:
    # the test upstream is a generic OpenAI server (routes not known) without /v1/responses
    raw = client.responses.with_raw_response.create(model=FAKE, input="hi", max_output_tokens=3)
    assert raw.headers["x-wave-backend"] == "fake" and raw.parse().output_text == "fake tok tok"
    assert client.responses.create(model=FAKE, input="again", max_output_tokens=2).output_text == "fake tok"


def test_responses_tool_call_and_its_result(client: openai.OpenAI) -> None:
    tool = {"type": "function", **WEATHER["function"]}
    first = client.responses.create(
        model=EMU, input="Weather in Paris?", tools=[tool], tool_choice="required"
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)["city"]
    second = client.responses.create(
        model=EMU,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[tool],
        max_output_tokens=5,
    )
    assert second.output_text  # after the tool's result the model answers in text


def test_responses_stored_by_the_engine_are_retrieved_through_the_gateway(client: openai.OpenAI) -> None:
    made = client.responses.create(model=EMU, input="remember me", max_output_tokens=3)
    again = client.responses.retrieve(made.id)
    assert again.id == made.id and again.output_text == made.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_does_not_exist")
    with pytest.raises(openai.NotFoundError) as exc:  # vLLM keeps responses, but deletes none
        client.responses.delete(made.id)
    assert "emu: cannot do that" in exc.value.message


def test_previous_response_id_over_a_stateless_backend_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model=TRANSLATED, input="more", previous_response_id="resp_1")
    assert "previous_response_id" in exc.value.message


def test_chat_tool_call_streamed_and_plain(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model=EMU, messages=HI, tools=[WEATHER], tool_choice="required")
    call = plain.choices[0].message.tool_calls[0]
    assert plain.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"]
    pieces, name = [], None
    for c in client.chat.completions.create(
        model=EMU, messages=HI, tools=[WEATHER], tool_choice="required", stream=True
    ):
        for d in c.choices[0].delta.tool_calls or []:
            name = name or d.function.name
            pieces.append(d.function.arguments or "")
    assert name == "get_weather" and json.loads("".join(pieces)) == json.loads(call.function.arguments)


def test_json_schema_output_matches_the_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2},
            "age": {"type": "integer", "minimum": 18},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
            "address": {"$ref": "#/$defs/address"},
        },
        "required": ["name", "age", "tags", "address"],
        "$defs": {
            "address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]+$"}}}
        },
        "additionalProperties": False,
    }
    r = client.chat.completions.create(
        model=EMU,
        messages=HI,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    jsonschema.validate(
        json.loads(r.choices[0].message.content), {**schema, "$defs": {"address": {"type": "object"}}}
    )


def test_n_choices_and_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=EMU, messages=HI, max_tokens=4, n=3, logprobs=True, top_logprobs=2
    )
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert len({c.message.content for c in r.choices}) == 3
    entry = r.choices[0].logprobs.content[0]
    assert len(entry.top_logprobs) == 2 and entry.top_logprobs[0].token == entry.token
    assert r.usage.completion_tokens == 12
    text = client.completions.create(model=EMU, prompt="x", max_tokens=3, logprobs=2)
    assert len(text.choices[0].logprobs.tokens) == 3 and len(text.choices[0].logprobs.top_logprobs[0]) == 2


def test_context_length_is_a_400_like_vllm(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=EMU, messages=HI, max_tokens=EMU_CONTEXT + 1)
    assert f"maximum context length is {EMU_CONTEXT} tokens" in exc.value.message


def test_audio_and_rerank_pass_through_where_the_backend_serves_them(
    client: openai.OpenAI, fleet: Fleet
) -> None:
    heard = client.audio.transcriptions.create(model=FAKE, file=("clip.wav", b"RIFF" + b"\0" * 996))
    assert heard.text == f"fake heard 1000 bytes as {FAKE}"
    speech = client.audio.speech.create(model=FAKE, voice="alloy", input="hello")
    assert speech.read() == b"ID3hello" and speech.response.headers["content-type"] == "audio/mpeg"
    import httpx

    r = httpx.post(
        fleet.url + "/v1/rerank",
        json={"model": FAKE, "query": "q", "documents": ["a", "b"]},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 200 and [x["index"] for x in r.json()["results"]] == [0, 1]
