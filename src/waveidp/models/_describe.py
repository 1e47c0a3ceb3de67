"""Read what a model's files are: format, the file to load, architecture, parameters, quant, licence.

The architecture comes from the model's own GGUF header or `config.json` (the catalog's readers),
never from a catalog entry, so a pulled model is a sizing model at once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from waveidp.catalog._gguf_header import gguf_metadata
from waveidp.catalog.store_manifest import Manifest, Source, StoredFile, WeightFormat, now_iso, read_spec
from waveidp.errors import ConfigError

_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
_TORCH_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def main_file(paths: list[str]) -> tuple[WeightFormat, str]:
    """The format and the file (or `config.json`) an engine loads, from a model's relative paths."""
    ggufs = sorted(p for p in paths if p.lower().endswith(".gguf") and "mmproj" not in p.lower())
    shards = [p for p in ggufs if _SHARD.search(p)]
    if shards:
        first = [p for p in shards if _SHARD.search(p).group(1) == "00001"]  # type: ignore[union-attr]
        if len(first) == 1 and len(ggufs) == len(shards):
            return "gguf", first[0]
    if len(ggufs) == 1:
        return "gguf", ggufs[0]
    if len(ggufs) > 1:
        raise ConfigError(
            f"{len(ggufs)} .gguf files in one model "
            f"({', '.join(ggufs[:4])}{', ...' if len(ggufs) > 4 else ''})",
            fix="pull or import one file at a time (hf://org/repo:*Q4_K_M.gguf) so each is its own model",
        )
    configs = sorted((p for p in paths if p.split("/")[-1] == "config.json"), key=lambda p: p.count("/"))
    if configs:
        fmt: WeightFormat = "safetensors" if any(p.endswith(".safetensors") for p in paths) else "other"
        return fmt, configs[0]
    raise ConfigError(
        "no .gguf file and no config.json among the model's files",
        fix="a model is a .gguf file, or a folder with config.json and its weights",
    )


def describe(
    folder: Path,
    files: list[StoredFile],
    *,
    name: str,
    source: Source,
    license: str | None = None,
) -> Manifest:
    fmt, weights = main_file([f.path for f in files])
    spec = read_spec(folder, weights)
    quant = spec.file_quant if fmt == "gguf" else _hf_quant(folder / weights)
    return Manifest(
        name=name,
        source=source,
        created_at=now_iso(),
        files=sorted(files, key=lambda f: f.path),
        format=fmt,
        weights=weights,
        architecture=spec.architecture,
        params=spec.params,
        quant=quant,
        license=license or _license_in_files(folder, weights),
    )


def _hf_quant(config: Path) -> str | None:
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    method = (cfg.get("quantization_config") or {}).get("quant_method")
    if method:
        return str(method).lower()
    dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    return _TORCH_DTYPE.get(str(dtype))


def _license_in_files(folder: Path, weights: str) -> str | None:
    """`general.license` of a GGUF header, else a README's `license:` front matter."""
    if weights.lower().endswith(".gguf"):
        value = gguf_metadata(folder / weights).get("general.license")
        if isinstance(value, str) and value:
            return value
    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        if text.startswith("---"):
            front = text.split("---", 2)[1]
            m = re.search(r"^license:\s*(\S+)\s*$", front, re.MULTILINE)
            if m:
                return m.group(1).strip("'\"")
    return None
