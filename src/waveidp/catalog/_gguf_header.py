"""Read a model's architecture from a GGUF file's header (metadata and tensor table, no weights).

`gguf.GGUFReader` memory-maps the file and parses the key/value metadata and tensor infos; the
tensor data pages are never touched. The parameter count is the sum of the tensor element counts,
which is exact for the file (it is what llama.cpp prints as `model params`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from waveidp.catalog._hf_config import slug_id
from waveidp.catalog._models import ModelSpec
from waveidp.errors import ConfigError

# Layers per global-attention layer for architectures whose GGUF does not carry the pattern
# (llama.cpp hard-codes the same: Gemma 2 alternates, Gemma 3 is 5 local : 1 global).
_DEFAULT_PATTERN = {"gemma2": 2, "gemma3": 6}


def model_from_gguf(path: str | Path) -> ModelSpec:
    file = Path(path)
    if not file.is_file():
        raise ConfigError("GGUF file not found", where=str(file))
    stat = file.stat()
    return _read(file, stat.st_size, stat.st_mtime_ns)


def gguf_metadata(path: str | Path) -> dict[str, Any]:
    """A GGUF file's metadata values; an array of strings (the vocabulary...) appears as its length."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError("GGUF file not found", where=str(file))
    stat = file.stat()
    return dict(_header(file, stat.st_size, stat.st_mtime_ns).values)


@dataclass(frozen=True)
class _Header:
    values: dict[str, Any]
    tensor_names: frozenset[str]
    params: int


# Parsing a header walks every tokenizer string in Python (seconds for a 256K vocabulary), and one
# command may read the same file several times: remember results per (path, size, mtime).
@functools.lru_cache(maxsize=32)
def _header(file: Path, size: int, mtime_ns: int) -> _Header:
    from gguf import GGUFReader, GGUFValueType

    try:
        reader = GGUFReader(file, "r")
    except Exception as exc:  # the reader raises ValueError, IndexError, struct errors... on a bad file
        raise ConfigError(
            f"not a readable GGUF file ({type(exc).__name__}: {exc})", where=str(file)
        ) from None
    values: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if field.types[:2] == [GGUFValueType.ARRAY, GGUFValueType.STRING]:
            values[key] = len(field.data)
        else:
            values[key] = field.contents()
    return _Header(
        values=values,
        tensor_names=frozenset(t.name for t in reader.tensors),
        params=int(sum(int(t.n_elements) for t in reader.tensors)),
    )


@functools.lru_cache(maxsize=32)
def _read(file: Path, size: int, mtime_ns: int) -> ModelSpec:
    from gguf import LlamaFileType

    header = _header(file, size, mtime_ns)

    def value(key: str) -> Any:
        return header.values.get(key)

    arch = value("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ConfigError("missing metadata key 'general.architecture'", where=f"{file} general.architecture")

    def integer(key: str, default: int | None = None) -> int:
        got = value(f"{arch}.{key}")
        if isinstance(got, list) and got:  # per-layer arrays (e.g. head_count_kv); sizing needs one value
            got = max(got)
        if got is None:
            got = default
        if not isinstance(got, int) or isinstance(got, bool) or got <= 0:
            raise ConfigError(
                f"metadata key '{arch}.{key}' missing or not a positive integer ({got!r})",
                where=f"{file} {arch}.{key}",
            )
        return got

    layers = integer("block_count")
    hidden = integer("embedding_length")
    heads = integer("attention.head_count")
    vocab = integer("vocab_size", value("tokenizer.ggml.tokens"))
    names = header.tensor_names
    window = value(f"{arch}.attention.sliding_window")
    window_layers = 0
    if isinstance(window, int) and window > 0:
        pattern = value(f"{arch}.attention.sliding_window_pattern")
        if isinstance(pattern, list) and pattern:  # newer files: one bool per layer
            window_layers = sum(1 for p in pattern if p)
        else:
            every = pattern if isinstance(pattern, int) and pattern > 0 else _DEFAULT_PATTERN.get(arch)
            window_layers = layers - layers // every if every else layers
    else:
        window = None

    file_type = value("general.file_type")
    quant = None
    if isinstance(file_type, int):
        try:
            quant = LlamaFileType(file_type).name.lower().removeprefix("mostly_").removeprefix("all_")
        except ValueError:
            quant = None
    name = value("general.name") or file.stem
    try:
        return ModelSpec(
            id=slug_id(file.stem),
            name=str(name),
            source=str(file),
            architecture=arch,
            params=header.params,
            layers=layers,
            hidden_size=hidden,
            intermediate_size=integer("feed_forward_length"),
            attention_heads=heads,
            kv_heads=integer("attention.head_count_kv", heads),
            head_dim=integer("attention.key_length", hidden // heads),
            vocab_size=vocab,
            max_context=integer("context_length"),
            tied_embeddings="output.weight" not in names,
            sliding_window=window,
            sliding_window_layers=window_layers,
            file_quant=quant,
            file_bytes=size,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            f"unusable GGUF metadata: {err['msg']}", where=f"{file} {'.'.join(map(str, err['loc']))}"
        ) from None
