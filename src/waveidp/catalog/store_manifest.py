"""What the model store records about one model: its files, where they came from, and what it
costs in quality; and a stored model as sizing sees it (`stored_model`).

A model is a folder of the store (`paths.models_dir()`) holding its files and `manifest.json`. The
manifest is the only thing the store trusts about a folder: a folder without one is an unfinished
pull or import and is not listed. `waveidp.models` writes the store; the catalog reads it, so that
a store name is a model name everywhere (`catalog.model`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waveidp.catalog._gguf_header import model_from_gguf
from waveidp.catalog._hf_config import model_from_hf_config
from waveidp.catalog._models import ModelSpec
from waveidp.errors import ConfigError
from waveidp.paths import models_dir

MANIFEST = "manifest.json"
SourceKind = Literal["hf", "local", "quantize", "package"]
WeightFormat = Literal["gguf", "safetensors", "other"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoredFile(_Frozen):
    path: str = Field(description="path inside the model's folder, '/'-separated")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Source(_Frozen):
    kind: SourceKind
    uri: str = Field(description="hf://org/repo@rev:glob, a local path, or the base model and the command")
    repo: str | None = None
    revision: str | None = Field(default=None, description="the commit the files came from (hub pulls)")
    base: str | None = Field(default=None, description="store name of the model this one was made from")
    base_sha256: str | None = Field(default=None, description="sha256 of the base's weights file")
    command: list[str] | None = Field(default=None, description="the command that made it (quantize)")


class QualityResult(_Frozen):
    """What `llama-perplexity --kl-divergence` measured against a base model on one text."""

    against: str = Field(description="store name of the base model")
    base_sha256: str
    text: str = Field(description="name of the evaluation text")
    text_sha256: str
    context: int
    chunks: int
    tokens: int = Field(description="tokens scored (the second half of each chunk)")
    kld_mean: float
    kld_median: float
    kld_p95: float
    kld_p99: float
    kld_max: float
    top1_agreement: float = Field(description="share of tokens whose most likely next token is the base's")
    ppl: float
    ppl_base: float
    delta_p_rms: float = Field(description="RMS of the change in the correct token's probability (0-1)")
    seconds: float
    measured_at: str
    tool: str = Field(description="the llama-perplexity command line (paths shortened)")
    policy_max_kld_p95: float | None = None
    accepted: bool | None = Field(default=None, description="None when no policy was given")

    @property
    def ppl_ratio(self) -> float:
        return self.ppl / self.ppl_base


class Manifest(_Frozen):
    schema_version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN)
    source: Source
    created_at: str
    files: list[StoredFile] = Field(min_length=1)
    format: WeightFormat
    weights: str = Field(description="the file sizing and engines load (a .gguf, or config.json's folder)")
    architecture: str
    params: int = Field(gt=0)
    quant: str | None = Field(default=None, description="weight format of the file, e.g. q4_k_m, f16")
    license: str | None = None
    quality: list[QualityResult] = Field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def weights_sha256(self) -> str:
        for f in self.files:
            if f.path == self.weights:
                return f.sha256
        return ""

    def with_quality(self, result: QualityResult) -> Manifest:
        """This manifest with `result` replacing an earlier one against the same base and text."""
        kept = [q for q in self.quality if (q.against, q.text) != (result.against, result.text)]
        return self.model_copy(update={"quality": [*kept, result]})

    def best_quality(self) -> QualityResult | None:
        """The latest measurement; None when the model was never measured."""
        return self.quality[-1] if self.quality else None


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def read_manifest(folder: Path) -> Manifest:
    file = folder / MANIFEST
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the model manifest: {exc.strerror}", where=str(file)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", where=f"{file}:{exc.lineno}") from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            f"invalid model manifest: {err['msg']}", where=f"{file} {'.'.join(map(str, err['loc']))}"
        ) from None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write atomically: a reader sees the old manifest or the new one, never half of one."""
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2, exclude_none=True) + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST)


def read_spec(folder: Path, weights: str) -> ModelSpec:
    """The architecture of a stored model from its own file (GGUF header or `config.json`)."""
    path = folder / weights
    return model_from_gguf(path) if weights.lower().endswith(".gguf") else model_from_hf_config(path)


def stored_spec(name: str, folder: Path, weights: str, source: str) -> ModelSpec:
    """A stored model as sizing sees it: the architecture from its own file, under its store name."""
    spec = read_spec(folder, weights)
    return spec.model_copy(update={"id": name, "name": name, "source": f"model store: {source}"})


def stored_model(name: str, root: Path | None = None) -> ModelSpec | list[str]:
    """The store's model of that name, else the names the store holds (for suggestions)."""
    import re

    root = root or models_dir()
    folder = root / name
    if re.fullmatch(NAME_PATTERN, name) and (folder / MANIFEST).is_file():
        m = read_manifest(folder)
        return stored_spec(m.name, folder, m.weights, m.source.uri)
    return stored_names(root)


def stored_names(root: Path) -> list[str]:
    """The models of the store at `root` (folders with a manifest), by name."""
    if not root.is_dir():
        return []
    return sorted(f.name for f in root.iterdir() if not f.name.startswith(".") and (f / MANIFEST).is_file())
