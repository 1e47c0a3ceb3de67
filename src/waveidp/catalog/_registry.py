"""The built-in catalogs, loaded once from `data/*.yaml`, and lookups by id or path."""

from __future__ import annotations

import functools
from pathlib import Path

from waveidp.catalog._data_files import load_hardware, load_models, load_quants
from waveidp.catalog._gguf_header import model_from_gguf
from waveidp.catalog._hf_config import model_from_hf_config
from waveidp.catalog._models import Hardware, ModelSpec, Quant
from waveidp.catalog.store_manifest import stored_model
from waveidp.errors import ConfigError, NotFoundError

DATA_DIR = Path(__file__).parent / "data"


@functools.cache
def all_hardware() -> dict[str, Hardware]:
    return load_hardware(DATA_DIR / "hardware.yaml")


@functools.cache
def all_models() -> dict[str, ModelSpec]:
    return load_models(DATA_DIR / "models.yaml")


@functools.cache
def all_quants() -> dict[str, Quant]:
    return load_quants(DATA_DIR / "quants.yaml")


def hardware(hardware_id: str) -> Hardware:
    entries = all_hardware()
    found = entries.get(hardware_id.strip().lower())
    if found is None:
        raise NotFoundError("hardware", hardware_id, entries)
    return found


def quant(quant_id: str) -> Quant:
    entries = all_quants()
    found = entries.get(quant_id.strip().lower())
    if found is None:
        raise NotFoundError("quant", quant_id, entries)
    return found


def model(model_id_or_path: str | Path) -> ModelSpec:
    """A built-in model by id, one read from a HF config.json, a directory holding one, or a .gguf,
    or a model of the local store (`wave models list`) by name, read from its own file."""
    text = str(model_id_or_path).strip()
    entries = all_models()
    found = entries.get(text.lower())
    if found is not None:
        return found
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        return model_from_gguf(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return model_from_hf_config(path / "config.json")
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return model_from_gguf(ggufs[0])
        raise ConfigError("directory holds no config.json (nor exactly one .gguf)", where=str(path))
    if path.suffix.lower() == ".json" or path.is_file():
        return model_from_hf_config(path)
    stored = stored_model(text)
    if isinstance(stored, ModelSpec):
        return stored
    raise NotFoundError("model", text, [*entries, *stored])
