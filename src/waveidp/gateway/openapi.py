"""The gateway's OpenAPI 3.1 document, kept by hand next to the routes it describes (served at
`/openapi.json`; schemathesis tests drive the gateway from it). Request schemas state what the
gateway itself checks; every other field passes through to the engine unchanged."""

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


def _err(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
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
    "503": _err("no healthy backend for the model"),
    "504": _err("every backend tried timed out"),
}
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


def _op(summary: str, schema: dict[str, Any], stream: bool = True) -> dict[str, Any]:
    ok: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if stream:
        ok["text/event-stream"] = {"schema": _SSE_EVENT}
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {
                "200": {"description": "the engine's answer, passed through", "content": ok},
                **_ERRORS,
            },
        }
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
        "schemas": {"Error": _ERROR},
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
