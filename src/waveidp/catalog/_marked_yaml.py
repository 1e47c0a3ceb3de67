"""YAML read with the line of every key kept, so a bad value is reported as `file:line` + field.

The document is composed into nodes (safe: only plain scalars, lists and mappings) and then turned
into plain Python data while recording where each mapping key sits. Duplicate keys, which PyYAML
silently overwrites, are an error here: in a catalog they would be two entries with one id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from waveidp.errors import ConfigError

Path_ = tuple[str | int, ...]


@dataclass
class Marked:
    """Plain data of one YAML file plus the 1-based line of every mapping key and list item."""

    file: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def where(self, path: Path_) -> str:
        """`file:line` of the deepest part of `path` that has a known line."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return f"{self.file}:{line}"
        return str(self.file)


def load_marked(file: Path) -> Marked:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", where=str(file)) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise ConfigError(f"invalid YAML: {exc.problem}", where=f"{file}:{line}") from exc
    marked = Marked(file=file, data=None)
    marked.data = {} if root is None else _plain(root, (), marked)
    return marked


def _plain(node: yaml.Node, path: Path_, marked: Marked) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if not isinstance(key, str | int | float | bool):
                raise ConfigError(
                    "mapping keys must be plain scalars",
                    where=f"{marked.file}:{key_node.start_mark.line + 1}",
                )
            key = str(key)
            if key in out:
                raise ConfigError(
                    f"duplicate key '{key}'", where=f"{marked.file}:{key_node.start_mark.line + 1}"
                )
            marked.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, (*path, key), marked)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            marked.lines[(*path, i)] = item.start_mark.line + 1
            items.append(_plain(item, (*path, i), marked))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return node
    return yaml.constructor.SafeConstructor().construct_object(node)
