"""Turn the catalog YAML files (datasheet units) into typed entries (base units).

Each file is a mapping `id -> entry`. Field names in YAML carry their unit (`memory_gib`,
`memory_bandwidth_gb_s`, `dense_tflops`, `tdp_w`); this module is the only place that converts
them. Any problem raises ConfigError naming `file:line` and the field.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from waveidp.catalog._marked_yaml import Marked, load_marked
from waveidp.catalog._models import Hardware, ModelSpec, Quant
from waveidp.errors import ConfigError

GIB = 1024**3
GB = 1000**3
TERA = 1e12

E = TypeVar("E", bound=BaseModel)

_COMMON = ("name", "source", "sources")

# YAML field -> (model field, factor to base units); fields not listed pass through unchanged.
_HARDWARE_UNITS: dict[str, tuple[str, float]] = {
    "memory_gib": ("memory_bytes", GIB),
    "memory_mib": ("memory_bytes", 1024**2),
    "memory_gb": ("memory_bytes", GB),
    "memory_bandwidth_gb_s": ("memory_bandwidth_bytes_per_s", GB),
    "interconnect_gb_s": ("interconnect_bandwidth_bytes_per_s", GB),
    "tdp_w": ("tdp_watts", 1.0),
}
_HARDWARE_PLAIN = (
    "kind",
    "vendor",
    "fp8",
    "fp4",
    "compute_capability",
    "clock_ghz",
    "unified_memory",
    "interconnect",
    "cores",
    "cpu_flags",
)
# Checked here, never handed to the model: the sparse figures a datasheet headlines, and the
# per-core arithmetic behind a CPU's peak.
_HARDWARE_CHECKS = ("sparse_tflops", "cpu_peak", "notes")


def load_hardware(file: Path) -> dict[str, Hardware]:
    return _load(file, Hardware, _hardware_fields)


def load_models(file: Path) -> dict[str, ModelSpec]:
    return _load(file, ModelSpec, _plain_fields(ModelSpec))


def load_quants(file: Path) -> dict[str, Quant]:
    return _load(file, Quant, _plain_fields(Quant))


def _load(
    file: Path, model: type[E], convert: Callable[[Marked, str, dict[str, Any]], dict[str, Any]]
) -> dict[str, E]:
    marked = load_marked(file)
    if not isinstance(marked.data, dict):
        raise ConfigError("expected a mapping of id -> entry at the top level", where=str(file))
    out: dict[str, E] = {}
    for entry_id, raw in marked.data.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"entry '{entry_id}' must be a mapping", where=marked.where((entry_id,)))
        _check_sources(marked, entry_id, raw)
        fields = convert(marked, entry_id, raw)
        try:
            out[entry_id] = model.model_validate({"id": entry_id, **fields})
        except ValidationError as exc:
            raise _validation_error(marked, entry_id, exc, raw) from None
    return out


def _plain_fields(model: type[BaseModel]) -> Callable[[Marked, str, dict[str, Any]], dict[str, Any]]:
    allowed = set(model.model_fields) - {"id"}

    def convert(marked: Marked, entry_id: str, raw: dict[str, Any]) -> dict[str, Any]:
        _reject_unknown(marked, entry_id, raw, allowed)
        return dict(raw)

    return convert


def _hardware_fields(marked: Marked, entry_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    allowed = {*_COMMON, *_HARDWARE_UNITS, *_HARDWARE_PLAIN, *_HARDWARE_CHECKS, "dense_tflops"}
    _reject_unknown(marked, entry_id, raw, allowed)
    out: dict[str, Any] = {k: raw[k] for k in (*_COMMON, *_HARDWARE_PLAIN) if k in raw}
    for yaml_field, (field, factor) in _HARDWARE_UNITS.items():
        if yaml_field in raw:
            if field in out:
                raise ConfigError(
                    f"'{yaml_field}' given twice in different units",
                    where=f"{marked.where((entry_id, yaml_field))} {entry_id}.{yaml_field}",
                )
            out[field] = _number(marked, (entry_id, yaml_field), raw[yaml_field]) * factor
    if "memory_bytes" in out:
        out["memory_bytes"] = round(out["memory_bytes"])
    if "cpu_flags" in out and isinstance(out["cpu_flags"], list):
        out["cpu_flags"] = tuple(out["cpu_flags"])

    dense = _tflops(marked, entry_id, raw, "dense_tflops")
    peak = _cpu_peak(marked, entry_id, raw)
    for dtype, value in peak.items():
        if dtype in dense:
            raise ConfigError(
                f"{dtype} given both in dense_tflops and cpu_peak",
                where=f"{marked.where((entry_id, 'cpu_peak'))} {entry_id}.cpu_peak",
            )
        dense[dtype] = value
    sparse = _tflops(marked, entry_id, raw, "sparse_tflops")
    for dtype, value in sparse.items():
        if dtype in dense and dense[dtype] > value * 1.0001:
            raise ConfigError(
                f"dense {dtype} {dense[dtype] / TERA:g} TFLOPS exceeds the sparse figure {value / TERA:g}",
                where=f"{marked.where((entry_id, 'dense_tflops', dtype))} {entry_id}.dense_tflops.{dtype}",
            )
    out["dense_flops"] = dense
    if isinstance(raw.get("sources"), dict):
        out["sources"] = {_model_field(key): text for key, text in raw["sources"].items()}
    return out


def _model_field(yaml_key: str) -> str:
    """`memory_gib` -> `memory_bytes`, `dense_tflops.fp8` / `cpu_peak` -> `dense_flops[.fp8]`."""
    head, dot, rest = yaml_key.partition(".")
    if head in _HARDWARE_UNITS:
        head = _HARDWARE_UNITS[head][0]
    elif head in ("dense_tflops", "cpu_peak"):
        head = "dense_flops"
    return head + dot + rest


def _check_sources(marked: Marked, entry_id: str, raw: dict[str, Any]) -> None:
    sources = raw.get("sources", {})
    if not isinstance(sources, dict):
        raise ConfigError(
            "'sources' must map field -> source",
            where=f"{marked.where((entry_id, 'sources'))} {entry_id}.sources",
        )
    for key, text in sources.items():
        head, _, sub = key.partition(".")
        table = raw.get(head)
        if head not in raw or (sub and not (isinstance(table, dict) and sub in table)):
            raise ConfigError(
                f"source given for '{key}', which this entry does not have",
                where=f"{marked.where((entry_id, 'sources', key))} {entry_id}.sources.{key}",
            )
        if not isinstance(text, str) or len(text) < 3:
            raise ConfigError(
                "a source must be a text naming a document, URL or arithmetic",
                where=f"{marked.where((entry_id, 'sources', key))} {entry_id}.sources.{key}",
            )


def _tflops(marked: Marked, entry_id: str, raw: dict[str, Any], key: str) -> dict[str, float]:
    table = raw.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(
            f"'{key}' must map dtype -> TFLOPS", where=f"{marked.where((entry_id, key))} {entry_id}.{key}"
        )
    return {dtype: _number(marked, (entry_id, key, dtype), v) * TERA for dtype, v in table.items()}


def _cpu_peak(marked: Marked, entry_id: str, raw: dict[str, Any]) -> dict[str, float]:
    """cores x GHz x FLOP per cycle per core, for each dtype listed in `flop_per_cycle`."""
    peak = raw.get("cpu_peak")
    if peak is None:
        return {}
    base = (entry_id, "cpu_peak")
    if not isinstance(peak, dict) or not isinstance(peak.get("flop_per_cycle"), dict):
        raise ConfigError(
            "'cpu_peak' needs cores, ghz and flop_per_cycle: {dtype: n}",
            where=f"{marked.where(base)} {entry_id}.cpu_peak",
        )
    _reject_unknown(marked, entry_id, peak, {"cores", "ghz", "flop_per_cycle"}, prefix=base)
    cores = _number(marked, (*base, "cores"), peak.get("cores"))
    ghz = _number(marked, (*base, "ghz"), peak.get("ghz"))
    return {
        dtype: cores * ghz * 1e9 * _number(marked, (*base, "flop_per_cycle", dtype), n)
        for dtype, n in peak["flop_per_cycle"].items()
    }


def _number(marked: Marked, path: tuple[str | int, ...], value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"expected a number, got {value!r}", where=f"{marked.where(path)} {'.'.join(map(str, path))}"
        ) from None
    if not number > 0:
        raise ConfigError(
            f"must be positive, got {value!r}", where=f"{marked.where(path)} {'.'.join(map(str, path))}"
        )
    return number


def _reject_unknown(
    marked: Marked,
    entry_id: str,
    raw: Mapping[str, Any],
    allowed: set[str],
    prefix: tuple[str | int, ...] | None = None,
) -> None:
    base = prefix or (entry_id,)
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            raise ConfigError(
                f"unknown field '{key}'",
                where=f"{marked.where((*base, key))} {'.'.join(map(str, (*base, key)))}",
                fix=f"did you mean '{close[0]}'?" if close else None,
            )


def _validation_error(
    marked: Marked, entry_id: str, exc: ValidationError, raw: dict[str, Any]
) -> ConfigError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    field = loc[0] if loc else ""
    # Report the YAML spelling of a converted field (memory_bytes -> memory_gib).
    for yaml_field, (model_field, _) in _HARDWARE_UNITS.items():
        if field == model_field and yaml_field in raw:
            loc[0] = yaml_field
    if field == "dense_flops":
        loc[0] = "dense_tflops"
    path = (entry_id, *loc)
    where = marked.where(tuple(path)) if loc else marked.where((entry_id,))
    return ConfigError(err["msg"].lower(), where=f"{where} {'.'.join(path)}")
