"""The Typer application and the output helpers every verb shares."""

from __future__ import annotations

import sys
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.text import Text

app = typer.Typer(
    name="wave",
    help="Wave: size, plan, render, serve, secure and benchmark self-hosted AI inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def print_json(obj: Any) -> None:
    """Write one JSON document to stdout (pydantic models and dataclasses included)."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


def shown(value: Any) -> Text:
    """A string someone else chose (a model name, a token's subject, a key's name or pattern, an
    error message quoting them) as terminal text: never read as Rich markup, and every character
    that is not printable (ANSI escapes, other control characters, bidi overrides, zero-width
    characters) written out as a visible escape such as `\\x1b` or `\\u202e`."""
    from waveidp.escaping import printable

    return Text(printable("-" if value is None else str(value)))
