"""Read a model's architecture from a Hugging Face `config.json`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from waveidp.catalog._models import ModelSpec
from waveidp.catalog._param_count import dense_params
from waveidp.errors import ConfigError

# Local:global attention patterns of architectures whose config does not spell out `layer_types`
# (Gemma 2 alternates 1:1; Gemma 3 has 5 sliding-window layers per global one).
_DEFAULT_PATTERN = {"gemma2": 2, "gemma3": 6}


def model_from_hf_config(path: str | Path) -> ModelSpec:
    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read model config: {exc.strerror or exc}", where=str(file)) from exc
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", where=f"{file}:{exc.lineno}") from None
    if not isinstance(cfg, dict):
        raise ConfigError("expected a JSON object", where=str(file))
    if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers (Gemma 3 4B+, Llava, ...)
        cfg = {**cfg, **cfg["text_config"]}
    return _spec(file, cfg)


def _spec(file: Path, cfg: dict[str, Any]) -> ModelSpec:
    def integer(key: str, default: int | None = None) -> int:
        value = cfg.get(key, default)
        if value is None:
            raise ConfigError(f"missing field '{key}'", where=f"{file} {key}")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(
                f"field '{key}' must be a positive integer, got {value!r}", where=f"{file} {key}"
            )
        return value

    # The text tower of a multimodal wrapper is named `<arch>_text` (gemma3_text); llama.cpp and
    # the catalog use the plain name.
    architecture = str(cfg.get("model_type") or "").lower().removesuffix("_text")
    if not architecture:
        raise ConfigError("missing field 'model_type'", where=f"{file} model_type")
    layers = integer("num_hidden_layers")
    hidden = integer("hidden_size")
    heads = integer("num_attention_heads")
    kv_heads = integer("num_key_value_heads", heads)
    head_dim = integer("head_dim", hidden // heads)
    intermediate = integer("intermediate_size")
    vocab = integer("vocab_size")
    tied = bool(cfg.get("tie_word_embeddings", True))  # transformers' PretrainedConfig default

    experts = cfg.get("num_local_experts")
    params = dense_params(
        architecture=architecture,
        layers=layers,
        hidden=hidden,
        intermediate=intermediate,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        tied=tied,
    )
    active = None
    if experts:  # Mixtral-style MoE: `experts` copies of the MLP, `top_k` used per token, a router
        top_k = integer("num_experts_per_tok")
        mlp = 3 * hidden * intermediate
        active = params
        params += layers * ((integer("num_local_experts") - 1) * mlp + hidden * int(experts))
        active += layers * ((top_k - 1) * mlp + hidden * int(experts))

    window, window_layers = _sliding(cfg, file, architecture, layers)
    name = str(cfg.get("_name_or_path") or file.parent.name or file.stem)
    return ModelSpec(
        id=slug_id(name),
        name=name,
        source=str(file),
        architecture=architecture,
        params=params,
        active_params=active,
        layers=layers,
        hidden_size=hidden,
        intermediate_size=intermediate,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        max_context=integer("max_position_embeddings"),
        tied_embeddings=tied,
        sliding_window=window,
        sliding_window_layers=window_layers,
    )


def _sliding(cfg: dict[str, Any], file: Path, architecture: str, layers: int) -> tuple[int | None, int]:
    window = cfg.get("sliding_window")
    if window is None or cfg.get("use_sliding_window") is False:
        return None, 0
    if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        raise ConfigError(
            f"field 'sliding_window' must be a positive integer, got {window!r}",
            where=f"{file} sliding_window",
        )
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return window, sum(1 for t in layer_types if t == "sliding_attention")
    pattern = cfg.get("sliding_window_pattern") or _DEFAULT_PATTERN.get(architecture)
    if isinstance(pattern, int) and pattern > 0:
        return window, layers - layers // pattern
    return window, layers  # e.g. Mistral 7B v0.1: every layer uses the window


def slug_id(name: str) -> str:
    """A catalog-style id from a repo name or file stem: `meta-llama/Llama-3.1-8B` -> `llama-3.1-8b`."""
    base = name.rstrip("/").split("/")[-1].lower()
    slug = re.sub(r"[^a-z0-9._-]+", "-", base).strip("-._")
    return slug or "model"
