"""The official `openai` client works unchanged against the gateway over fake upstreams."""

from __future__ import annotations

import openai
import pytest
from gateway_support import API_KEY


@pytest.fixture(scope="module")
def client(module_processes) -> openai.OpenAI:
    fake_upstream, gateway = module_processes
    a = fake_upstream("alpha", model=["m1"], itl=0.001)
    b = fake_upstream("beta", model=["m1", "m2"], itl=0.001)
    gw = gateway([a.url, b.url])
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=API_KEY, max_retries=0, timeout=20)


def test_models_lists_the_union_of_upstream_models(client: openai.OpenAI) -> None:
    assert sorted(m.id for m in client.models.list()) == ["m1", "m2"]


def test_chat_completion_passes_through_with_usage(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="m2", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert r.choices[0].message.content == "beta tok tok tok tok"  # only beta serves m2
    assert r.usage is not None and r.usage.completion_tokens == 5


def test_streamed_chat_arrives_in_order_and_ends_cleanly(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m1", messages=[{"role": "user", "content": "hi"}], max_tokens=6, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.split()[0] in {"alpha", "beta"} and text.split()[1:] == ["tok"] * 5
    # the gateway asked the engine for usage itself; the client, which did not, sees no usage-only chunk
    assert all(c.choices for c in chunks)


def test_stream_usage_reaches_a_client_that_asks_for_it(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m1",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = list(stream)[-1]
    assert last.usage is not None and last.usage.completion_tokens == 3


def test_completions_and_streamed_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model="m1", prompt="once upon", max_tokens=4)
    assert r.choices[0].text.endswith("tok tok tok")
    parts = [
        c.choices[0].text
        for c in client.completions.create(model="m1", prompt="x", max_tokens=3, stream=True)
        if c.choices
    ]
    assert "".join(parts).endswith(" tok tok")


def test_embeddings(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model="m1", input=["a", "b"])
    assert [d.embedding for d in r.data] == [[0.1, 0.2, 0.3]] * 2


def test_wrong_key_is_an_authentication_error(client: openai.OpenAI) -> None:
    bad = openai.OpenAI(base_url=str(client.base_url), api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 401 and "invalid API key" in str(exc.value)
