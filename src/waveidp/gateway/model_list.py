"""`GET /v1/models` and `GET /v1/models/{id}`: the models of every backend, each as its engine
lists it (`max_model_len`, `owned_by`, llama-server's `meta`, ...), with the backends serving it
added as `backends`. Where no engine has listed a model yet (a fleet backend that is down), a
plain OpenAI entry stands in. Asked with an `anthropic-version` header (Anthropic's SDKs send it),
the same models in Anthropic's list shape. A caller sees only the models its key or token may use."""

from __future__ import annotations

from typing import Any

from waveidp.gateway.errors import model_not_found
from waveidp.gateway.state import Gateway
from waveidp.security.principal import Principal


def openai_entry(gw: Gateway, model: str) -> dict[str, Any]:
    serving = gw.serving(model)
    entry: dict[str, Any] = next(
        (dict(b.model_entries[model]) for b in serving if model in b.model_entries),
        {"id": model, "object": "model", "created": 0, "owned_by": "wave"},
    )
    entry["backends"] = [b.name for b in serving]
    return entry


def anthropic_entry(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model, "created_at": "1970-01-01T00:00:00Z"}


def model_list(gw: Gateway, principal: Principal, anthropic: bool = False) -> dict[str, Any]:
    models = gw.models(principal)
    if anthropic:
        return {
            "data": [anthropic_entry(m) for m in models],
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
    return {"object": "list", "data": [openai_entry(gw, m) for m in models]}


def one_model(gw: Gateway, principal: Principal, model: str, anthropic: bool = False) -> dict[str, Any]:
    """One model's entry; 404 `model_not_found` for a model no backend serves, or one `principal`
    may not use (as if not served)."""
    if not gw.serving(model) or not principal.may_use(model):
        raise model_not_found(model, gw.models(principal))
    return anthropic_entry(model) if anthropic else openai_entry(gw, model)
