"""Responses and Messages requests answered through a backend's chat completions, when the backend
lacks the route (its engine adapter says so, or it answered the route with 404/405 once).

The translations themselves are pure (`waveidp.protocols`); this holds one request's: the chat
body it sends, and how the answer and the stream come back. A pass-through request never makes
one, so the hot path pays nothing for them.
"""

from __future__ import annotations

from typing import Any

import orjson

from waveidp.gateway.request_info import Endpoint
from waveidp.protocols import anthropic, responses
from waveidp.protocols.chat import ChatStreamTranslator


class Translation:
    """The chat completions call that answers one `endpoint` request (`request`, its parsed body)."""

    __slots__ = ("endpoint", "request")

    def __init__(self, endpoint: Endpoint, request: dict[str, Any]) -> None:
        self.endpoint = endpoint
        self.request = request

    def body(self, stream_usage: bool) -> bytes:
        """The chat request's bytes; raises `ApiError` (400) for what chat completions cannot carry."""
        if self.endpoint == "responses":
            chat = responses.request_to_chat(self.request, stream_usage=stream_usage)
        elif self.endpoint == "messages":
            chat = anthropic.request_to_chat(self.request, stream_usage=stream_usage)
        else:
            chat = anthropic.count_request(self.request)
        return orjson.dumps(chat)

    def answer(self, data: bytes) -> bytes:
        """The chat answer (status 200) in the client's API."""
        chat = orjson.loads(data)
        if self.endpoint == "responses":
            out = responses.answer_from_chat(chat, self.request)
        elif self.endpoint == "messages":
            out = anthropic.answer_from_chat(chat, self.request)
        else:
            out = anthropic.count_from_chat(chat)
        return orjson.dumps(out)

    def stream(self) -> ChatStreamTranslator:
        if self.endpoint == "responses":
            return responses.StreamFromChat(self.request)
        return anthropic.StreamFromChat(self.request)
