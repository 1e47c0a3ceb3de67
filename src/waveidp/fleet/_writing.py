"""Writing `wave.yaml`: clean YAML (field order, no default values) and merging a node into a file.

`merge_node_text` edits the text of an existing file so that the user's comments and layout
around the other nodes survive; it falls back to a full `dump` when the file's layout does not
allow a safe in-place edit, and it always checks that the result parses to the expected fleet.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import yaml
from pydantic import ValidationError

from waveidp.errors import ConfigError
from waveidp.fleet._loading import loads
from waveidp.fleet._source_map import dotted, parse
from waveidp.fleet.models import FieldError, Fleet, Node


class _Dumper(yaml.SafeDumper):
    """Indents lists under their key and writes short lists of names inline (`devices: [gpu0]`)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    inline = bool(value) and all(isinstance(v, str | int | float | bool) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=inline)


_Dumper.add_representer(list, _represent_list)


def to_data(fleet: Fleet) -> dict[str, Any]:
    """Plain data of `fleet` without default values; `version` is always written."""
    data = fleet.model_dump(mode="json", exclude_defaults=True)
    return {"version": fleet.version, **_compact(data)}


def node_data(node: Node) -> dict[str, Any]:
    return _compact(node.model_dump(mode="json", exclude_defaults=True))


def _compact(value: Any) -> Any:
    """A served model that is only a name is written as the name."""
    if isinstance(value, dict):
        out = {k: _compact(v) for k, v in value.items()}
        if "models" in out and isinstance(out["models"], list):
            out["models"] = [_served(m) for m in out["models"]]
        return out
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # `memory_gib: 128`, not `128.0`
    return value


def _served(model: Any) -> Any:
    return model["name"] if isinstance(model, dict) and set(model) == {"name"} else model


def dump_data(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def dump(fleet: Fleet) -> str:
    """The fleet as YAML that `loads` reads back to an equal fleet."""
    return dump_data(to_data(fleet))


def merge_node(fleet: Fleet, node: Node, *, only: Collection[str] | None = None) -> Fleet:
    """`fleet` with `node` added, or merged into the node of the same name.

    Merging keeps what the file says about the existing node and takes from `node` the fields it
    sets explicitly, limited to `only` when given (detection passes the hardware fields, so a
    curated address, role or backend list survives a re-detect).
    """
    nodes = list(fleet.nodes)
    for i, old in enumerate(nodes):
        if old.name == node.name:
            take = node.model_fields_set - {"name"}
            if only is not None:
                take &= set(only)
            nodes[i] = old.model_copy(update={f: getattr(node, f) for f in take})
            break
    else:
        nodes.append(node)
    data = fleet.model_dump(mode="json", exclude_defaults=True)
    data["nodes"] = [n.model_dump(mode="json", exclude_defaults=True) for n in nodes]
    return _validated(data, f"merging node {node.name}")


def merge_node_text(text: str, filename: str, node: Node, *, only: Collection[str] | None = None) -> str:
    """The text of fleet file `text` with `node` merged in (see `merge_node`), comments kept."""
    fleet = loads(text, filename)
    try:
        merged = merge_node(fleet, node, only=only)
    except ConfigError as exc:
        raise ConfigError(exc.what, where=filename, fix="give the node another --name") from None
    new_node = merged.node(node.name)
    edited = _edit_in_place(text, filename, fleet, new_node)
    if edited is not None:
        try:
            if loads(edited, filename) == merged:
                return edited
        except ConfigError:
            pass
    return dump(merged)


def _edit_in_place(text: str, filename: str, fleet: Fleet, node: Node) -> str | None:
    """Replace the node's lines, or append after the last node; None when the layout is unusual."""
    _, smap = parse(text, filename)
    if ("nodes",) not in smap.keys or not fleet.nodes:
        return None
    lines = text.splitlines(keepends=True)
    names = [n.name for n in fleet.nodes]
    index = names.index(node.name) if node.name in names else None
    first_item = smap.values.get(("nodes", 0))
    nodes_key = smap.keys[("nodes",)]
    if first_item is None or first_item.line <= nodes_key.line:
        return None  # flow style (`nodes: [...]`) or an item on the key's line
    dash_col = _dash_column(lines[first_item.line - 1], first_item.column)
    if dash_col is None:
        return None
    item = _item_text(node, dash_col)
    if index is None:
        end = smap.ends[("nodes", len(fleet.nodes) - 1)]
        return "".join([*lines[: end.line], *_ensure_newline(lines[: end.line]), item, *lines[end.line :]])
    start = smap.values[("nodes", index)]
    end = smap.ends[("nodes", index)]
    if _dash_column(lines[start.line - 1], start.column) != dash_col:
        return None
    return "".join([*lines[: start.line - 1], item, *lines[end.line :]])


def _dash_column(line: str, item_column: int) -> int | None:
    """0-based column of the `- ` that opens a block list item whose content starts at `item_column`."""
    before = line[: item_column - 1]
    stripped = before.rstrip()
    if not stripped.endswith("-") or stripped[:-1].strip():
        return None
    return len(stripped) - 1


def _item_text(node: Node, dash_col: int) -> str:
    body = dump_data([node_data(node)])
    pad = " " * dash_col
    return "".join(pad + line if line.strip() else line for line in body.splitlines(keepends=True))


def _ensure_newline(lines: list[str]) -> list[str]:
    return ["\n"] if lines and not lines[-1].endswith("\n") else []


def _validated(data: dict[str, Any], doing: str) -> Fleet:
    try:
        return Fleet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        loc = tuple(first["loc"]) + (cause.loc if isinstance(cause, FieldError) else ())
        why = str(cause) if isinstance(cause, ValueError) else first["msg"]
        raise ConfigError(f"{doing} would make the fleet invalid: {dotted(loc)}: {why}") from None
