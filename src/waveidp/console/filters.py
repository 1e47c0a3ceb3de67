"""Jinja filters the console's templates format numbers and times with (None shows as a dash)."""

from __future__ import annotations

import time
from datetime import datetime

from jinja2 import Environment

DASH = "–"


def ms(seconds: float | None, digits: int = 0) -> str:
    if seconds is None:
        return DASH
    value = seconds * 1000
    return f"{value:,.{digits}f} ms" if value < 10_000 else f"{seconds:,.1f} s"


def gib(n: float | None, digits: int = 1) -> str:
    return DASH if n is None else f"{n / 2**30:,.{digits}f} GiB"


def pct(x: float | None, digits: int = 0) -> str:
    return DASH if x is None else f"{x * 100:.{digits}f} %"


def num(x: float | None, digits: int = 0) -> str:
    return DASH if x is None else f"{x:,.{digits}f}"


def clock(ts: float | None) -> str:
    return DASH if ts is None else datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def stamp(ts: float | None) -> str:
    return DASH if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def ago(ts: float | None) -> str:
    if ts is None:
        return DASH
    s = max(0.0, time.time() - ts)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 2 * 86400:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} d ago"


def install(env: Environment) -> None:
    env.filters.update(ms=ms, gib=gib, pct=pct, num=num, clock=clock, stamp=stamp, ago=ago)
