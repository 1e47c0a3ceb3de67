"""The audit log's hash chain, pure: `hash = sha256(prev_hash + "\\n" + canonical JSON of the row,
id included)`. Both tables chain rows with `link` inside their append transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

GENESIS = "0" * 64
FIELDS = (
    "ts",
    "request_id",
    "principal",
    "endpoint",
    "model",
    "backend",
    "status",
    "tokens_in",
    "tokens_out",
    "latency_s",
    "prompt",
)


def row_hash(prev_hash: str, row_id: int, values: dict[str, Any]) -> str:
    canonical = orjson.dumps({"id": row_id, **{k: values[k] for k in FIELDS}}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical).hexdigest()


def link(top: int, prev: str, entries: Sequence[dict[str, Any]]) -> tuple[list[tuple[Any, ...]], int, str]:
    """Rows `(id, *FIELDS, prev_hash, hash)` for `entries` after the head (`top`, `prev`), and the
    new head."""
    rows = []
    for e in entries:
        top += 1
        digest = row_hash(prev, top, e)
        rows.append((top, *(e[k] for k in FIELDS), prev, digest))
        prev = digest
    return rows, top, prev


def identity(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What tells two entries apart without an id: the microsecond of the request, who, what, the outcome."""
    return (entry["ts"], entry["principal"], entry["request_id"], entry["status"])
