"""Small history charts drawn as inline SVG from numbers, on the server.

The page's Content-Security-Policy allows no inline style and no script: what is drawn here uses
presentation attributes only (fill, stroke, font-size), which the policy does not govern, and
every text is escaped. Colours are `currentColor` or fixed values, so the CSS of the page sets
the line colour through the chart's `class`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 240, 100  # drawn about as wide as shown, so the 10-unit labels read as 10 px
LEFT, RIGHT, TOP, BOTTOM = 36, 6, 8, 20  # room for the value labels (left) and dates (bottom)
GRID = "#dde2ea"
LABEL = "#5b6475"


def compact_number(value: float | None) -> str:
    """12345 -> "12.3k"; 1_250_000 -> "1.2M"; None -> "?"."""
    if value is None:
        return "?"
    number = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            shown = f"{number / limit:.1f}".rstrip("0").rstrip(".")
            return f"{shown}{suffix}"
    return f"{number:g}" if number != int(number) else str(int(number))


def line_chart(
    points: Sequence[tuple[datetime, float | None]],
    *,
    title: str,
    start: datetime,
    end: datetime,
    css_class: str = "",
) -> SafeString:
    """A line of `points` (time, value; None = not measured) between `start` and `end`."""
    measured = [(when, float(value)) for when, value in points if value is not None]
    summary = _summary(title, measured)
    parts = [_open(title, summary, css_class), _frame(start, end)]
    if measured:
        low = min(value for _, value in measured)
        high = max(value for _, value in measured)
        if high == low:
            low, high = (0.0, high * 2) if high > 0 else (high - 1, high + 1)
        parts.append(_value_labels(low, high))
        coordinates = [(_x(when, start, end), _y(value, low, high)) for when, value in measured]
        if len(coordinates) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="currentColor" '
                'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
            )
        x, y = coordinates[-1]
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="currentColor"/>')
    else:
        parts.append(
            f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT / 2:.0f}" '
            f'text-anchor="middle" font-size="11" fill="{LABEL}">not measured yet</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (built here; every text went through escape)


def release_timeline(
    releases: Sequence[tuple[str, datetime | None]],
    *,
    title: str,
    start: datetime,
    end: datetime,
    css_class: str = "",
) -> SafeString:
    """A time axis with a mark for each release published between `start` and `end`."""
    dated = [(name, when) for name, when in releases if when is not None and start <= when <= end]
    if dated:
        summary = f"{title}: {len(dated)} release{'s' * (len(dated) != 1)}, the latest " + (
            f"{dated[-1][0]} on {dated[-1][1]:%Y-%m-%d}"
        )
    else:
        summary = f"{title}: no release in this time"
    axis = HEIGHT - BOTTOM
    parts = [_open(title, summary, css_class), _axis(start, end, y=axis)]
    for index, (name, when) in enumerate(dated):
        x = _x(when, start, end)
        top = TOP + 6 + (index % 3) * 18  # staggered, so that close releases stay apart
        parts.append(
            f"<g><title>{escape(name)} ({when:%Y-%m-%d})</title>"
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis}" stroke="currentColor" '
            'stroke-width="2"/>'
            f'<circle cx="{x:.1f}" cy="{top}" r="4" fill="currentColor"/></g>'
        )
    if not dated:
        parts.append(
            f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT / 2:.0f}" '
            f'text-anchor="middle" font-size="11" fill="{LABEL}">no release in this time</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (built here; every text went through escape)


def _summary(title: str, measured: list[tuple[datetime, float]]) -> str:
    if not measured:
        return f"{title}: not measured yet"
    (first_at, first), (last_at, last) = measured[0], measured[-1]
    if len(measured) == 1:
        return f"{title}: {compact_number(last)} on {last_at:%Y-%m-%d}"
    return (
        f"{title}: from {compact_number(first)} on {first_at:%Y-%m-%d} "
        f"to {compact_number(last)} on {last_at:%Y-%m-%d}"
    )


def _open(title: str, summary: str, css_class: str) -> str:
    return (
        f'<svg class="chart {escape(css_class)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(summary)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(summary)}</title>"
    )


def _frame(start: datetime, end: datetime) -> str:
    bottom = HEIGHT - BOTTOM
    return (
        f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}" stroke="{GRID}"/>'
        + _axis(start, end, y=bottom)
    )


def _axis(start: datetime, end: datetime, *, y: float) -> str:
    return (
        f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="{GRID}"/>'
        f'<text x="{LEFT}" y="{y + 15}" font-size="10" fill="{LABEL}">{start:%Y-%m-%d}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{y + 15}" font-size="10" fill="{LABEL}" '
        f'text-anchor="end">{end:%Y-%m-%d}</text>'
    )


def _value_labels(low: float, high: float) -> str:
    return (
        f'<text x="{LEFT - 6}" y="{TOP + 4}" font-size="10" fill="{LABEL}" text-anchor="end">'
        f"{escape(compact_number(high))}</text>"
        f'<text x="{LEFT - 6}" y="{HEIGHT - BOTTOM}" font-size="10" fill="{LABEL}" '
        f'text-anchor="end">{escape(compact_number(low))}</text>'
    )


def _x(when: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    share = min(max((when - start).total_seconds() / span, 0.0), 1.0)
    return LEFT + share * (WIDTH - LEFT - RIGHT)


def _y(value: float, low: float, high: float) -> float:
    share = (value - low) / (high - low)
    return HEIGHT - BOTTOM - share * (HEIGHT - BOTTOM - TOP)
