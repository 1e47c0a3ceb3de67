"""Read a model's architecture from a GGUF file's header (metadata and tensor table, no weights).

`gguf.GGUFReader` memory-maps the file and parses the key/value metadata and tensor infos; the
tensor data pages are never touched. The parameter count is the sum of the tensor element counts,
which is exact for the file (it is what llama.cpp prints as `model params`).
"""

from __future__ import annotations

import functools
import math
import struct
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
    weight_types: dict[str, dict[str, int]]  # "layers" / "output" / "embedding" -> GGUF type -> parameters


# One command may read the same file several times: remember results per (path, size, mtime).
@functools.lru_cache(maxsize=32)
def _header(file: Path, size: int, mtime_ns: int) -> _Header:
    try:
        found = _scan(file)
    except (OSError, ValueError, IndexError, struct.error, UnicodeDecodeError):
        found = None
    return found if found is not None else _gguf_reader_header(file)


# GGUF value types: fixed-size scalars (struct format), 8 string, 9 array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def _scan(file: Path) -> _Header | None:
    """The header of a little-endian GGUF v2/v3 file, read straight from the bytes: gguf's
    `GGUFReader` builds numpy views of every vocabulary string and took 13 s of CPU for Gemma 3's
    262,144 tokens; this skips string arrays (their length is what is kept) in ~0.1 s. None for
    anything else (the caller falls back to `GGUFReader`)."""
    import mmap

    with open(file, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"GGUF" or struct.unpack_from("<I", m, 4)[0] not in (2, 3):
            return None
        n_tensors, n_kv = struct.unpack_from("<QQ", m, 8)
        pos = 24
        # the reader's own pseudo-keys, first as it lists them
        values: dict[str, Any] = {
            "GGUF.version": struct.unpack_from("<I", m, 4)[0],
            "GGUF.tensor_count": n_tensors,
            "GGUF.kv_count": n_kv,
        }

        def string(at: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", m, at)
            return m[at + 8 : at + 8 + n].decode("utf-8"), at + 8 + n

        def scalar(kind: int, at: int) -> tuple[Any, int]:
            if kind == _STRING:
                return string(at)
            fmt = "<" + _SCALARS[kind]
            return struct.unpack_from(fmt, m, at)[0], at + struct.calcsize(fmt)

        for _ in range(n_kv):
            key, pos = string(pos)
            (kind,) = struct.unpack_from("<I", m, pos)
            pos += 4
            if kind != _ARRAY:
                values[key], pos = scalar(kind, pos)
                continue
            item, count = struct.unpack_from("<IQ", m, pos)
            pos += 12
            if item == _STRING:  # the vocabulary, merges...: only the length is kept
                for _ in range(count):
                    pos += 8 + struct.unpack_from("<Q", m, pos)[0]
                values[key] = count
            elif item in _SCALARS:
                fmt = "<" + _SCALARS[item] * count
                values[key] = list(struct.unpack_from(fmt, m, pos))
                pos += struct.calcsize(fmt)
            else:
                return None  # arrays of arrays: not in any model header seen; let gguf read it
        tensors = []
        for _ in range(n_tensors):
            name, pos = string(pos)
            (dims,) = struct.unpack_from("<I", m, pos)
            shape = struct.unpack_from(f"<{dims}Q", m, pos + 4)
            (kind,) = struct.unpack_from("<I", m, pos + 4 + 8 * dims)
            pos += 4 + 8 * dims + 4 + 8  # the shape, then the type and the data offset
            tensors.append((name, tuple(shape), kind))
    return _Header(
        values=values,
        tensor_names=frozenset(t[0] for t in tensors),
        params=int(sum(math.prod(t[1]) for t in tensors)),
        weight_types=_weight_types(tensors),
    )


def _gguf_reader_header(file: Path) -> _Header:
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
    tensors = [(t.name, tuple(int(x) for x in t.shape), int(t.tensor_type)) for t in reader.tensors]
    return _Header(
        values=values,
        tensor_names=frozenset(t[0] for t in tensors),
        params=int(sum(int(t.n_elements) for t in reader.tensors)),
        weight_types=_weight_types(tensors),
    )


def _weight_types(tensors: list[tuple[str, tuple[int, ...], int]]) -> dict[str, dict[str, int]]:
    """Parameters per GGUF tensor type of the matmul weights: the layers' ("blk.*"), the output's
    (`output.weight`, else the tied embedding) and an untied token embedding's ("embedding"); norms
    and biases (1-D) are not matmuls."""
    from gguf import GGMLQuantizationType

    names = {name for name, _, _ in tensors}
    output = "output.weight" if "output.weight" in names else "token_embd.weight"
    parts = (
        {output: "output", "token_embd.weight": "embedding"}
        if output == "output.weight"
        else {output: "output"}
    )
    out: dict[str, dict[str, int]] = {"layers": {}, "output": {}, "embedding": {}}
    for name, shape, kind in tensors:
        if len(shape) < 2 or not name.endswith(".weight"):
            continue
        part = "layers" if name.startswith("blk.") else parts.get(name)
        if part is None:
            continue
        try:
            type_name = GGMLQuantizationType(kind).name
        except ValueError:
            type_name = f"type{kind}"
        out[part][type_name] = out[part].get(type_name, 0) + math.prod(shape)
    return out


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
            file_weight_types=header.weight_types,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            f"unusable GGUF metadata: {err['msg']}", where=f"{file} {'.'.join(map(str, err['loc']))}"
        ) from None
