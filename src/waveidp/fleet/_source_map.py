"""Where every value of a YAML document sits, so errors can say `file:line` and the field path.

PyYAML composes a node tree whose nodes carry marks (line, column); we walk it once and record,
for each data path such as `("nodes", 1, "devices", 0, "hardware")`, the position of the key and
of the value. Duplicate mapping keys, which PyYAML silently overwrites, are reported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from waveidp.errors import ConfigError

DataPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class SourceMap:
    """Positions of the keys and values of one parsed YAML document."""

    filename: str
    values: dict[DataPath, Position] = field(default_factory=dict)
    keys: dict[DataPath, Position] = field(default_factory=dict)
    # the end of each value's last line with content (for text edits that keep the rest of the file)
    ends: dict[DataPath, Position] = field(default_factory=dict)

    def position(self, path: DataPath, *, key: bool = False) -> Position | None:
        """Position of `path` (of its key when `key`), else of its deepest known ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(tuple(path[:end]))
            if found is not None:
                return found
        return None

    def where(self, path: DataPath, *, key: bool = False) -> str:
        pos = self.position(path, key=key)
        return f"{self.filename}:{pos.line}" if pos else self.filename


def dotted(path: DataPath) -> str:
    """`("nodes", 1, "devices", 0, "hardware")` -> `nodes[1].devices[0].hardware`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse(text: str, filename: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document safely; syntax errors become ConfigError with file:line:col."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, SourceMap(filename)
        smap = SourceMap(filename)
        _index(root, (), smap)  # before constructing: PyYAML would silently drop duplicate keys
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise ConfigError(f"YAML syntax error: {problem}{context}", where=where) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", where=filename) from exc
    finally:
        loader.dispose()
    return data, smap


def _index(node: yaml.Node, path: DataPath, smap: SourceMap) -> None:
    smap.values[path] = _pos(node.start_mark)
    smap.ends[path] = _last_content(node)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError("mapping keys must be plain names", where=_where(smap, key_node))
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges are indexed where the anchor was written
            key = key_node.value
            if key in seen:
                raise ConfigError(
                    f"duplicate key '{key}' (first at line {seen[key].line})", where=_where(smap, key_node)
                )
            seen[key] = _pos(key_node.start_mark)
            smap.keys[(*path, key)] = seen[key]
            _index(value_node, (*path, key), smap)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), smap)


def _last_content(node: yaml.Node) -> Position:
    """End of the last scalar inside `node`: block collections' own end marks run into what follows."""
    while isinstance(node, yaml.CollectionNode) and node.value and node.flow_style is not True:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return _pos(node.end_mark)


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _where(smap: SourceMap, node: yaml.Node) -> str:
    return f"{smap.filename}:{node.start_mark.line + 1}"
