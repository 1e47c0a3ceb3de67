"""One exception tree for every user-facing failure.

A `WaveError` prints as one line a person can act on: what went wrong, where, and how to fix
it. The CLI turns it into exit code 2 without a traceback; the gateway turns its HTTP-facing
subclasses into OpenAI-style error bodies.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WaveError(Exception):
    """Base class: a user-facing error with an optional location and fix."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} ({self.fix})" if self.fix else text


class ConfigError(WaveError):
    """A configuration or data file is malformed; `where` is `file:line` and the field path."""


class NotFoundError(WaveError):
    """An id that names nothing; the message suggests the closest valid ids."""

    def __init__(self, kind: str, name: str, valid: Iterable[str], *, where: str | None = None) -> None:
        choices = sorted(valid)
        close = difflib.get_close_matches(name.lower(), choices, n=3, cutoff=0.4)
        fix = f"did you mean {', '.join(close)}?" if close else f"valid {kind} ids: {', '.join(choices[:12])}"
        if not close and len(choices) > 12:
            fix += ", ..."
        super().__init__(f"unknown {kind} '{name}'", where=where, fix=fix)
        self.kind = kind
        self.name = name
        self.suggestions = close


class InputError(WaveError):
    """A command-line value or input file that cannot be used (negative, absurd, wrong type)."""
