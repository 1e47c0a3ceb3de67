"""The gateway's OpenAPI 3.1 document, kept by hand next to the routes it describes (served at
`/openapi.json`; schemathesis tests drive the gateway from it). Request schemas state what the
gateway itself checks; every other field passes through to the engine unchanged. Anthropic's
routes (`/v1/messages`, count_tokens) answer errors in Anthropic's shape."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}


def _err(text: str, schema: str = "Error") -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_ERRORS = {
    "400": _err("invalid JSON, wrong field types or missing fields"),
    "401": _err("missing, invalid, revoked or expired API key or token"),
    "403": _err("the key or token may not use this model"),
    "404": _err("model not served here"),
    "413": _err("request body over the gateway's limit"),
    "431": _err("too many request headers, or too large"),
    "429": {
        **_err("over the key's requests/min, tokens/min or concurrent requests; see Retry-After"),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    "502": _err("every backend tried failed"),
    "503": _err("no healthy backend for the model, it may still appear, or all are overloaded (Retry-After)"),
    "504": _err("every backend tried timed out"),
}
_ANTHROPIC_ERRORS = {status: _err(r["description"], "AnthropicError") for status, r in _ERRORS.items()}
_MAX_TOKENS = {"type": "integer", "minimum": 1}
_COMMON = {
    "model": {"type": "string", "minLength": 1},
    "stream": {"type": "boolean"},
    "max_tokens": _MAX_TOKENS,
    "user": {"type": "string"},
}


# One server-sent event as OpenAPI 3.1 tools read an event-stream schema (schemathesis checks each
# event against it): `data` holds a JSON chunk, an error object, or the final `[DONE]`.
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _op(
    summary: str,
    schema: dict[str, Any],
    stream: bool = True,
    *,
    errors: dict[str, Any] | None = None,
    body: str = "application/json",
    answer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ok: dict[str, Any] = answer or {"application/json": {"schema": {"type": "object"}}}
    if stream:
        ok["text/event-stream"] = {"schema": _SSE_EVENT}
    missing_route = {"404": _err("model not served here, or its backends lack the route")}
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {body: {"schema": schema}}},
            "responses": {
                "200": {"description": "the engine's answer, passed through (or translated)", "content": ok},
                **(errors or _ERRORS),
                **({} if errors else missing_route),
            },
        }
    }


def _get(
    summary: str, params: list[dict[str, Any]], errors: tuple[str, ...] = ("401", "404")
) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": params,
        "responses": {
            "200": {"description": "found", "content": {"application/json": {"schema": {"type": "object"}}}},
            **{e: _ERRORS[e] for e in errors},
        },
    }


_MODEL = {"type": "string", "minLength": 1}
_ANTHROPIC_MESSAGES = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": ["user", "assistant"]},
            "content": {
                "anyOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type", "text"],
                            "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                        },
                    },
                ]
            },
        },
    },
}
_ID_PARAM = {
    "name": "response_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Wave gateway",
        "version": "1",
        "description": "OpenAI-compatible gateway over a fleet",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": _ERROR, "AnthropicError": _ANTHROPIC_ERROR},
    },
    "paths": {
        "/v1/chat/completions": _op(
            "Chat completion (SSE when stream=true)",
            {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    **_COMMON,
                    "max_completion_tokens": _MAX_TOKENS,
                    "messages": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["role"],
                            "properties": {
                                "role": {"type": "string"},
                                "content": {"type": ["string", "array", "null"]},
                            },
                        },
                    },
                },
            },
        ),
        "/v1/completions": _op(
            "Text completion (SSE when stream=true)",
            {
                "type": "object",
                "required": ["model", "prompt"],
                "properties": {
                    **_COMMON,
                    "prompt": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                            {"type": "array", "items": {"type": "integer"}},
                        ]
                    },
                },
            },
        ),
        "/v1/embeddings": _op(
            "Embeddings",
            {
                "type": "object",
                "required": ["model", "input"],
                "properties": {
                    "model": {"type": "string", "minLength": 1},
                    "user": {"type": "string"},
                    "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                },
            },
            stream=False,
        ),
        "/v1/responses": _op(
            "OpenAI Responses (SSE when stream=true); translated to chat completions for backends without it",
            {
                "type": "object",
                "required": ["model", "input"],
                "properties": {
                    "model": _MODEL,
                    "stream": {"type": "boolean"},
                    "max_output_tokens": _MAX_TOKENS,
                    "instructions": {"type": "string"},
                    "input": {
                        "anyOf": [
                            {"type": "string"},
                            {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["role", "content"],
                                    "properties": {
                                        "role": {"enum": ["user", "assistant", "system", "developer"]},
                                        "content": {"type": "string"},
                                    },
                                },
                            },
                        ]
                    },
                },
            },
        ),
        "/v1/responses/{response_id}": {
            "get": _get("A stored response, from the backend that keeps it", [_ID_PARAM]),
            "delete": _get("Delete a stored response, where the backend can", [_ID_PARAM]),
        },
        "/v1/messages": _op(
            "Anthropic Messages (SSE when stream=true); x-api-key or Bearer; Anthropic-shaped errors",
            {
                "type": "object",
                "required": ["model", "messages", "max_tokens"],
                "properties": {
                    "model": _MODEL,
                    "stream": {"type": "boolean"},
                    "max_tokens": _MAX_TOKENS,
                    "system": {"type": "string"},
                    "messages": _ANTHROPIC_MESSAGES,
                },
            },
            errors=_ANTHROPIC_ERRORS,
        ),
        "/v1/messages/count_tokens": _op(
            "Anthropic token count of a Messages request",
            {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": _MODEL,
                    "system": {"type": "string"},
                    "messages": _ANTHROPIC_MESSAGES,
                },
            },
            stream=False,
            errors=_ANTHROPIC_ERRORS,
        ),
        "/v1/rerank": _op(
            "Rerank documents (vLLM, llama-server --reranking; also at /rerank)",
            {
                "type": "object",
                "required": ["model", "query", "documents"],
                "properties": {
                    "model": _MODEL,
                    "query": {"type": "string"},
                    "documents": {"type": "array", "items": {"type": "string"}},
                },
            },
            stream=False,
        ),
        "/v1/score": _op(
            "Score text pairs (vLLM; also at /score)",
            {"type": "object", "required": ["model"], "properties": {"model": _MODEL}},
            stream=False,
        ),
        "/tokenize": _op(
            "Tokenize (vLLM: prompt or messages; llama-server: content); model optional with one model",
            {"type": "object", "properties": {"model": {"type": "string"}}},
            stream=False,
        ),
        "/detokenize": _op(
            "Detokenize token ids",
            {"type": "object", "properties": {"model": {"type": "string"}, "tokens": {"type": "array"}}},
            stream=False,
        ),
        "/v1/audio/transcriptions": _op(
            "Speech to text (multipart upload), where a backend serves it",
            {
                "type": "object",
                "required": ["model", "file"],
                "properties": {"model": _MODEL, "file": {"type": "string", "format": "binary"}},
            },
            stream=False,
            body="multipart/form-data",
        ),
        "/v1/audio/speech": _op(
            "Text to speech, where a backend serves it (the audio passed through)",
            {
                "type": "object",
                "required": ["model", "input"],
                "properties": {"model": _MODEL, "input": {"type": "string"}, "voice": {"type": "string"}},
            },
            stream=False,
            answer={"audio/*": {"schema": {"type": "string", "format": "binary"}}},
        ),
        "/v1/models/{model}": {
            "get": _get(
                "One model, as its engine lists it",
                [
                    {
                        "name": "model",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    }
                ],
            )
        },
        "/v1/models": {
            "get": {
                "summary": "Models served",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {
                        "description": "model list",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": _ERRORS["401"],
                },
            }
        },
        "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/ready": {
            "get": {
                "summary": "At least one healthy backend",
                "responses": {"200": {"description": "ready"}, "503": {"description": "no healthy backend"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "metrics"}}}
        },
    },
}
