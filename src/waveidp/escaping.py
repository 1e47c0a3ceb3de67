"""Text someone else chose (a client's path or model name, an engine's error message), made safe to
show to a person: every character that is not printable (ANSI escapes and other control
characters, line breaks, bidi overrides, zero-width characters) written out as a visible escape
such as `\\x1b` or `\\u202e`, so that it can neither drive a terminal nor forge a log line."""

from __future__ import annotations


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with its non-printable characters escaped (line breaks kept with `keep_newlines`:
    a traceback's own lines)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or (keep_newlines and c == "\n") else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
