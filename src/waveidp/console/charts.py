"""Chart data for the pages: plain JSON that static/charts.js hands to uPlot (no chart code here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PALETTE = ("#2f5bea", "#c42b2b", "#138a4b", "#b7791f", "#7048e8", "#0b7285")


@dataclass
class Chart:
    """One uPlot chart: a shared x axis and one or more y series. `time_x`: x is epoch seconds."""

    title: str
    x: list[float]
    series: list[dict[str, Any]] = field(default_factory=list)
    time_x: bool = True
    x_label: str = ""
    y_label: str = ""
    bars: bool = False

    def add(self, label: str, values: Sequence[float | None], *, unit: str = "") -> Chart:
        self.series.append(
            {
                "label": label,
                "values": list(values),
                "color": PALETTE[len(self.series) % len(PALETTE)],
                "unit": unit,
            }
        )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "x": self.x,
            "series": self.series,
            "time": self.time_x,
            "xLabel": self.x_label,
            "yLabel": self.y_label,
            "bars": self.bars,
        }
