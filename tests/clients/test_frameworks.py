"""LiteLLM's SDK (offline: its bundled cost map, no telemetry) and LangChain's OpenAI and Anthropic
chat models, pointed at the gateway as users point them at any OpenAI or Anthropic endpoint."""

from __future__ import annotations

import os

import pytest
from clients_support import EMU, KEY, LLAMA, TRANSLATED, Fleet

pytestmark = pytest.mark.engine
HI = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def litellm():  # type: ignore[no-untyped-def]
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # never fetch the cost map
    import litellm

    litellm.telemetry = False
    return litellm


@pytest.mark.parametrize("model", [LLAMA, EMU])
def test_litellm_completion_streaming_and_embeddings(litellm, fleet: Fleet, model: str) -> None:  # type: ignore[no-untyped-def]
    where = {"api_base": fleet.url + "/v1", "api_key": KEY}
    r = litellm.completion(model=f"openai/{model}", messages=HI, max_tokens=4, temperature=0, **where)
    assert r.choices[0].message.content
    chunks = litellm.completion(
        model=f"openai/{model}", messages=HI, max_tokens=4, temperature=0, stream=True, **where
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    e = litellm.embedding(model=f"openai/{model}", input=["a cat"], **where)
    assert len(e.data[0]["embedding"]) > 8


def test_litellm_anthropic_messages_and_responses(litellm, fleet: Fleet) -> None:  # type: ignore[no-untyped-def]
    r = litellm.completion(
        model=f"anthropic/{TRANSLATED}", messages=HI, max_tokens=4, api_base=fleet.url, api_key=KEY
    )
    assert r.choices[0].message.content
    out = litellm.responses(
        model=f"openai/{EMU}", input="Say hi", max_output_tokens=4, api_base=fleet.url + "/v1", api_key=KEY
    )
    assert out.output[0].content[0].text


@pytest.mark.parametrize("responses_api", [False, True])
def test_langchain_openai_invoke_stream_and_tools(fleet: Fleet, responses_api: bool) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=EMU,
        base_url=fleet.url + "/v1",
        api_key=KEY,
        max_tokens=8,
        max_retries=0,
        use_responses_api=responses_api,
    )
    assert llm.invoke("Say hi").text
    assert "".join(c.text for c in llm.stream("Say hi"))

    def get_weather(city: str) -> str:
        """Today's weather in a city."""
        return "sunny"

    call = llm.bind_tools([get_weather], tool_choice="required").invoke("Weather in Paris?")
    assert call.tool_calls and call.tool_calls[0]["name"] == "get_weather"
    assert isinstance(call.tool_calls[0]["args"]["city"], str)


def test_langchain_responses_over_llama_cpp(fleet: Fleet) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=LLAMA,
        base_url=fleet.url + "/v1",
        api_key=KEY,
        max_tokens=8,
        temperature=0,
        use_responses_api=True,
    )
    assert llm.invoke("Say hi").text


def test_langchain_anthropic(fleet: Fleet) -> None:
    from langchain_anthropic import ChatAnthropic

    for model in (LLAMA, TRANSLATED):
        # greedy: a sampled end-of-turn as the first token is an empty answer (and llama-server's
        # Messages stream then lacks message_start: docs/gateway.md)
        llm = ChatAnthropic(
            model=model, base_url=fleet.url, api_key=KEY, max_tokens=8, max_retries=0, temperature=0
        )
        assert llm.invoke("Say hi").text
        assert "".join(c.text for c in llm.stream("Say hi"))
