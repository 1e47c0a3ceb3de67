"""How sizing writes quantities for people: one spelling of a byte count."""

from __future__ import annotations


def gb(n: float, digits: int = 1) -> str:
    """Decimal gigabytes, e.g. `gb(4.52e9)` -> '4.5 GB' (the verdict sentences), `digits=2` for tables."""
    return f"{n / 1e9:.{digits}f} GB"
