"""The throughput chart: a small SVG drawn on the server from numbers only (no script, no
chart library; nothing read from the broker reaches it but counts)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 120


@dataclass(frozen=True, slots=True)
class Chart:
    """What the template draws.

    Attributes:
        line: ``x,y`` points of the rate line (empty without samples).
        area: The same, closed along the bottom, for the fill.
        peak: The highest rate in the window (the top of the scale).
        last: The latest rate, or None before two samples were taken.
        span: Seconds the x axis covers.
    """

    line: str
    area: str
    peak: float
    last: float | None
    span: float


MIN_SPAN = 30.0
"""Seconds the x axis covers at least: a young history fills the chart instead of hugging
its right edge."""


def draw(rates: list[tuple[float, float]], now: float, window: float) -> Chart:
    """Scale `rates` (``(time, tasks/s)``) into the chart's box, newest on the right; the x
    axis covers the history kept, between `MIN_SPAN` and `window` seconds."""
    if not rates:
        return Chart("", "", 0.0, None, MIN_SPAN)
    span = min(max(now - rates[0][0], MIN_SPAN), window)
    peak = max(rate for _, rate in rates)
    top = peak if peak > 0 else 1.0
    points = []
    for at, rate in rates:
        x = WIDTH - (now - at) / span * WIDTH
        y = HEIGHT - rate / top * (HEIGHT - 4)
        points.append(f"{max(x, 0.0):.1f},{y:.1f}")
    line = " ".join(points)
    first_x = points[0].split(",")[0]
    last_x = points[-1].split(",")[0]
    area = f"{first_x},{HEIGHT} {line} {last_x},{HEIGHT}"
    return Chart(line, area, peak, rates[-1][1], span)


__all__ = ["HEIGHT", "WIDTH", "Chart", "draw"]
