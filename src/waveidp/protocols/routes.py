"""The API routes beyond chat completions, completions and embeddings that a backend may serve, by
the names the gateway, the engine adapters and the fleet file's `routes:` share."""

from __future__ import annotations

from typing import Literal, get_args

ApiRoute = Literal[
    "responses",
    "messages",
    "count_tokens",
    "rerank",
    "score",
    "tokenize",
    "detokenize",
    "transcriptions",
    "translations",
    "speech",
]
API_ROUTES: frozenset[str] = frozenset(get_args(ApiRoute))
