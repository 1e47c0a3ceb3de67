"""Reading `wave.yaml`: YAML -> `Fleet`, with every problem reported as one `file:line` error.

Pydantic reports an error `loc` such as `("nodes", 1, "devices", 0, "hardware")`, sometimes with
union-branch tags (`"ServedModel"`, `"function-after[...]"`) mixed in; we walk that loc through the
parsed data to find the real field path, then ask the source map for its line.
"""

from __future__ import annotations

import difflib
import types
import typing
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from waveidp.errors import ConfigError
from waveidp.fleet._source_map import DataPath, SourceMap, dotted, parse
from waveidp.fleet.models import FieldError, Fleet

_SCALAR_TAGS = {"str", "int", "float", "bool"}
_PATTERN_MEANING = {
    r"^[a-z0-9][a-z0-9_.-]*$": "must be lower-case letters, digits, '.', '_' or '-', first not a sign",
    r"^https?://": "must be a URL starting with http:// or https://",
}


def load(path: str | Path) -> Fleet:
    """Read and validate a fleet file; any problem raises one ConfigError naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            "fleet file not found", where=str(path), fix="write one with `wave fleet detect > wave.yaml`"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read fleet file: {exc}", where=str(path)) from exc
    return loads(text, str(path))


def loads(text: str, filename: str = "<string>") -> Fleet:
    """Validate fleet YAML text; `filename` is only used in error messages."""
    data, smap = parse(text, filename)
    if data is None:
        raise ConfigError(
            "the fleet file is empty",
            where=filename,
            fix="it needs at least `version: 1` and a `nodes:` list",
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"the fleet file must be a mapping (version, nodes, ...), not a {_kind(data)}",
            where=smap.where(()),
        )
    try:
        fleet = Fleet.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, data, smap) from None
    _SOURCES[id(fleet)] = smap
    weakref.finalize(fleet, _SOURCES.pop, id(fleet), None)
    return fleet


# Positions are kept beside the fleet, not in it: two fleets with the same content are equal
# however their files were laid out.
_SOURCES: dict[int, SourceMap] = {}


def source_map(fleet: Fleet) -> SourceMap | None:
    """The positions recorded when `fleet` was loaded (None for fleets built in code)."""
    return _SOURCES.get(id(fleet))


@dataclass(frozen=True)
class _Problem:
    path: DataPath
    line: int
    message: str
    kind: str = ""


def _drop_explained(problems: list[_Problem]) -> list[_Problem]:
    """`hardwre: x` yields 'unknown hardwre' and 'missing hardware': the typo explains both, keep it."""
    typos = {
        (p.path[:-1], close)
        for p in problems
        if p.kind == "extra_forbidden"
        for close in _close_fields(p.path)
    }
    kept = [p for p in problems if not (p.kind == "missing" and (p.path[:-1], p.path[-1]) in typos)]
    return kept or problems


def _config_error(exc: ValidationError, data: Any, smap: SourceMap) -> ConfigError:
    errors = exc.errors()
    if len(errors) > 1:  # a mapping also fails the `str` branch of `ServedModel | str`: noise
        errors = [e for e in errors if not _scalar_branch_noise(e)] or errors
    problems = _drop_explained(sorted((_problem(e, data, smap) for e in errors), key=lambda p: p.line))
    first = problems[0]
    more = len(problems) - 1
    where = f"{smap.filename}:{first.line}" if first.line else smap.filename
    what = f"{dotted(first.path)}: {first.message}"
    if more:
        lines = sorted({p.line for p in problems[1:] if p.line})
        at = f" (lines {', '.join(map(str, lines[:8]))}{', ...' if len(lines) > 8 else ''})" if lines else ""
        what += f"; and {more} more problem{'s' if more > 1 else ''}{at}"
    return ConfigError(what, where=where)


def _scalar_branch_noise(err: Any) -> bool:
    loc = err["loc"]
    scalar_branch = bool(loc) and loc[-1] in _SCALAR_TAGS and err["type"].endswith("_type")
    return scalar_branch and isinstance(err.get("input"), dict)


def _problem(err: Any, data: Any, smap: SourceMap) -> _Problem:
    kind: str = err["type"]
    loc = tuple(err["loc"])
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        loc = loc + cause.loc
    path, rest = _data_path(loc, data)
    if kind == "missing" and rest:
        path = (*path, rest[-1])
        message = f"missing required field '{rest[-1]}'"
        pos = smap.position(path[:-1])
    elif kind == "extra_forbidden":
        message = _unknown_field(path)
        pos = smap.position(path, key=True)
    else:
        pos = smap.position(path)
        message = _message(err, cause)
    return _Problem(path, pos.line if pos else 0, message, kind)


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[DataPath, list[Any]]:
    """Follow `loc` through the data; parts that name nothing (union tags) are skipped."""
    path: list[str | int] = []
    skipped: list[Any] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
            path.append(part)
        else:
            skipped.append(part)
    return tuple(path), skipped


def _message(err: Any, cause: Any) -> str:
    if isinstance(cause, ValueError) and err["type"] == "value_error":
        return str(cause)
    msg: str = err["msg"]
    if err["type"] == "string_pattern_mismatch":
        msg = _PATTERN_MEANING.get((err.get("ctx") or {}).get("pattern", ""), msg)
    value = err.get("input")
    if isinstance(value, dict | list):
        return f"{msg}, got a {_kind(value)}"
    return f"{msg}, got {value!r}"


def _unknown_field(path: DataPath) -> str:
    name = str(path[-1])
    model = _model_at(path[:-1])
    if model is None:
        return f"unknown field '{name}'"
    close = _close_fields(path)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field '{name}' ({hint}allowed: {', '.join(model.model_fields)})"


def _close_fields(path: DataPath) -> list[str]:
    model = _model_at(path[:-1])
    if model is None:
        return []
    return difflib.get_close_matches(str(path[-1]), list(model.model_fields), n=1, cutoff=0.6)


def _model_at(path: DataPath) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path` (Fleet at the top)."""
    tp: Any = Fleet
    for part in path:
        tp = _model_in(tp)
        if tp is None:
            return None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if not isinstance(part, str) or part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
        else:
            args = typing.get_args(tp)
            origin = typing.get_origin(tp)
            if origin is list and isinstance(part, int):
                tp = args[0]
            elif origin is dict and isinstance(part, str):
                tp = args[1]
            else:
                return None
    found = _model_in(tp)
    return found if isinstance(found, type) and issubclass(found, BaseModel) else None


def _model_in(tp: Any) -> Any:
    """Strip `X | None` and `Model | str` down to the container or model inside."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None) and a not in (str, int, float, bool)]
        return inner[0] if len(inner) == 1 else None
    return tp


def _kind(value: Any) -> str:
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
    }.get(type(value), type(value).__name__)
