"""The project page's history charts: inline SVG drawn from numbers, fit for a strict CSP."""

import re
from datetime import UTC, datetime, timedelta

from registry import charts

END = datetime(2026, 11, 29, tzinfo=UTC)
START = END - timedelta(days=365)


def polyline_points(svg: str) -> list[tuple[float, float]]:
    raw = re.search(r'<polyline points="([^"]+)"', svg).group(1)
    return [tuple(float(v) for v in pair.split(",")) for pair in raw.split()]


def test_a_line_chart_scales_its_points_into_the_frame():
    points = [(START + timedelta(days=30 * i), 100 + 10 * i) for i in range(12)]
    svg = str(charts.line_chart(points, title="Stars", start=START, end=END, css_class="stars"))

    drawn = polyline_points(svg)
    assert len(drawn) == 12
    xs, ys = [x for x, _ in drawn], [y for _, y in drawn]
    assert xs == sorted(xs) and xs[0] == charts.LEFT
    assert ys == sorted(ys, reverse=True)  # rising values climb the chart
    assert min(ys) == charts.TOP and max(ys) == charts.HEIGHT - charts.BOTTOM
    assert 'aria-label="Stars: from 100 on 2025-11-29 to 210 on ' in svg
    assert ">210<" in svg and ">100<" in svg  # the value labels
    assert 'class="chart stars"' in svg


def test_charts_hold_no_script_and_no_style_attribute():
    points = [(START, 5), (END, None), (END, 9)]
    for svg in (
        str(charts.line_chart(points, title="<script>x</script>", start=START, end=END)),
        str(charts.release_timeline([("v1 <b>", END)], title="Releases", start=START, end=END)),
    ):
        assert "<script" not in svg and "style=" not in svg
        assert not re.search(r"\son\w+=", svg)
        assert "&lt;" in svg
        assert svg.startswith("<svg ") and svg.endswith("</svg>")


def test_missing_values_are_skipped_and_an_empty_chart_says_so():
    one = str(charts.line_chart([(END, None), (END, 7)], title="Commits", start=START, end=END))
    assert "<polyline" not in one and "<circle" in one and "Commits: 7 on 2026-11-29" in one
    empty = str(charts.line_chart([], title="Commits", start=START, end=END))
    assert "not measured yet" in empty and "<circle" not in empty
    flat = str(charts.line_chart([(START, 0), (END, 0)], title="Flat", start=START, end=END))
    assert "nan" not in flat.lower()


def test_release_timeline_marks_releases_in_the_window():
    releases = [
        ("v0.1", START - timedelta(days=5)),
        ("v1.0", START + timedelta(days=100)),
        ("v1.1", END - timedelta(days=3)),
        ("undated", None),
    ]
    svg = str(charts.release_timeline(releases, title="Releases", start=START, end=END))
    assert svg.count("<circle") == 2
    assert "v1.0 (" in svg and "v0.1" not in svg
    assert "2 releases, the latest v1.1 on 2026-11-26" in svg
    assert "no release" in str(charts.release_timeline([], title="R", start=START, end=END))


def test_compact_numbers():
    assert [charts.compact_number(v) for v in (None, 0, 999, 1000, 12_345, 1_250_000, 2.5)] == [
        "?",
        "0",
        "999",
        "1k",
        "12.3k",
        "1.2M",
        "2.5",
    ]
