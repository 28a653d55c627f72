"""Badge rendering: what each badge says, the flat SVG and the shields.io JSON, and that no
text or colour can inject markup."""

import json
import os
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from defusedxml import ElementTree

from registry import badges
from registry.badges import Badge, ProjectSummary

SNAPSHOTS = Path(__file__).parent / "snapshots"
SVG_NS = "{http://www.w3.org/2000/svg}"
ALLOWED_TAGS = {"svg", "title", "linearGradient", "stop", "clipPath", "rect", "g", "text"}
ALLOWED_FILLS = set(badges.COLORS.values()) | {"#fff", "#010101", "url(#s)"}

EVIL_TEXTS = [
    "</text><script>alert(1)</script>",
    '"><svg onload="alert(1)">',
    "' onmouseover='alert(1)",
    "R&D <b>&amp;</b> &lt;",
    "x" * 10_000,
    "\u202eevil\u202c right-to-left \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "zero\u200bwidth\u200d\ufeffjoin",
    "nul\x00byte\x01\x1f\x7fend",
    "lone \ud800 surrogate \ufffe",
    "]]><![CDATA[<script>",
    "<!-- comment --><?xml-stylesheet href='x'?>",
    "\n\t  spaced \r\n out  ",
]
EVIL_COLORS = ["red;onload=alert(1)", '"><script>', "#ff0000", "url(javascript:x)", "", "RED"]


def parse_svg(svg: str) -> Element:
    root = ElementTree.fromstring(svg.encode())
    assert root.tag == SVG_NS + "svg"
    return root


def assert_inert(root: Element) -> None:
    for element in root.iter():
        tag = element.tag.removeprefix(SVG_NS)
        assert tag in ALLOWED_TAGS, tag
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), name
            if name == "aria-label":  # the badge's own (escaped) text
                continue
            assert "script" not in value.lower(), (name, value)
            if name == "fill":
                assert value in ALLOWED_FILLS, value
            if name == "href" or name.endswith("}href"):
                raise AssertionError("no links in a badge")


@pytest.mark.parametrize("text", EVIL_TEXTS)
@pytest.mark.parametrize("where", ["label", "message"])
def test_hostile_text_stays_text(text, where):
    badge = Badge(
        label=text if where == "label" else "pytorch",
        message=text if where == "message" else "ok",
        color="red",
    )
    svg = badges.render_svg(badge)
    root = parse_svg(svg)
    assert_inert(root)
    assert "<script" not in svg
    shown = badges.clean_text(text)
    texts = [el.text or "" for el in root.iter(SVG_NS + "text")]
    assert (texts[0] if where == "label" else texts[2]) == shown
    title = root.find(SVG_NS + "title")
    assert title is not None and shown in title.text
    # Bounded whatever the input size: no 10 kB badge.
    assert len(shown) <= badges.MAX_TEXT_CHARS
    assert int(root.get("width")) < 1000
    document = json.loads(badges.render_endpoint_json(badge))
    assert document[where] == shown


def test_clean_text_drops_controls_format_characters_and_bidi_overrides():
    assert badges.clean_text("a\x00b\u200bc\u202ed\ufeffe") == "abcde"
    assert badges.clean_text("  two\n\nlines ") == "two lines"
    assert badges.clean_text("\u05e9\u05dc\u05d5\u05dd") == "\u05e9\u05dc\u05d5\u05dd"
    long = badges.clean_text("y" * 500)
    assert len(long) == badges.MAX_TEXT_CHARS and long.endswith("…")


@pytest.mark.parametrize("color", EVIL_COLORS)
def test_unknown_colours_render_grey(color):
    badge = Badge("label", "message", color)
    root = parse_svg(badges.render_svg(badge))
    assert_inert(root)
    fills = [rect.get("fill") for rect in root.iter(SVG_NS + "rect")]
    assert fills[2] == badges.COLORS["lightgrey"]
    assert json.loads(badges.render_endpoint_json(badge))["color"] == "lightgrey"


def test_allow_listed_colours_are_kept():
    for name, hex_value in badges.COLORS.items():
        root = parse_svg(badges.render_svg(Badge("a", "b", name)))
        assert [r.get("fill") for r in root.iter(SVG_NS + "rect")][2] == hex_value


def test_widths_follow_the_verdana_table():
    # "pytorch" in Verdana 11px: p y t o r c h = 41.75px; 5px padding each side.
    assert badges.text_width("pytorch") == pytest.approx(41.75)
    root = parse_svg(badges.render_svg(Badge("pytorch", "2.13 | 2.14", "brightgreen")))
    label_rect, message_rect = list(root.iter(SVG_NS + "rect"))[1:3]
    assert label_rect.get("width") == "52"
    expected_message = round(badges.text_width("2.13 | 2.14")) + 10
    assert message_rect.get("width") == str(expected_message)
    assert root.get("width") == str(52 + expected_message)
    # Wider glyphs make wider badges; zero-width ones add nothing.
    assert badges.text_width("WWW") > badges.text_width("iii")
    assert badges.text_width("a\u0301") == badges.text_width("a")
    assert badges.text_width("中文") == 2 * badges.WIDE_CHAR_WIDTH


def test_svg_is_accessible():
    root = parse_svg(badges.render_svg(Badge("tac review", "accepted", "brightgreen")))
    assert root.get("role") == "img"
    assert root.get("aria-label") == "tac review: accepted"
    assert root.find(SVG_NS + "title").text == "tac review: accepted"


def test_endpoint_json_follows_the_shields_schema():
    document = json.loads(badges.render_endpoint_json(Badge("pytorch", "2.14", "brightgreen")))
    assert document == {
        "schemaVersion": 1,
        "label": "pytorch",
        "message": "2.14",
        "color": "brightgreen",
        "cacheSeconds": 300,
    }


@pytest.mark.parametrize(
    ("kind", "summary", "message", "color"),
    [
        ("ecosystem", ProjectSummary("ecosystem", "active"), "active", "brightgreen"),
        ("ecosystem", ProjectSummary("hosted", "active"), "hosted", "blue"),
        ("ecosystem", ProjectSummary("ecosystem", "retired"), "retired", "lightgrey"),
        ("ecosystem", None, "unknown", "lightgrey"),
        (
            "compat",
            ProjectSummary("ecosystem", "active", works_with=("2.14", "2.9", "2.13")),
            "2.9 | 2.13 | 2.14",
            "brightgreen",
        ),
        (
            "compat",
            ProjectSummary("ecosystem", "active", works_with=("2.13",), breaks_with=("2.14",)),
            "2.13, fails 2.14",
            "red",
        ),
        (
            "compat",
            ProjectSummary("ecosystem", "active", breaks_with=("2.14", "2.13")),
            "fails 2.13, 2.14",
            "red",
        ),
        (
            "compat",
            ProjectSummary(
                "ecosystem", "active", works_with=("2.13",), not_installable_with=("2.14",)
            ),
            "2.13, not installable 2.14",
            "orange",
        ),
        (
            "compat",
            ProjectSummary("ecosystem", "active", not_installable_with=("2.14",)),
            "not installable 2.14",
            "orange",
        ),
        (
            "compat",
            ProjectSummary(
                "ecosystem", "active", breaks_with=("2.13",), not_installable_with=("2.14",)
            ),
            "fails 2.13, not installable 2.14",
            "red",
        ),
        ("compat", ProjectSummary("ecosystem", "active"), "untested", "lightgrey"),
        ("review", ProjectSummary("ecosystem", "active"), "none", "lightgrey"),
        (
            "review",
            ProjectSummary("hosted", "active", accepted_on="2025-04-08"),
            "hosted, accepted 2025-04-08",
            "blue",
        ),
        ("review", ProjectSummary("hosted", "active"), "hosted", "blue"),
        (
            "review",
            ProjectSummary("hosted", "active", review_state="in_review"),
            "in review",
            badges.REVIEW_COLORS.get("in_review", "lightgrey"),
        ),
        (
            "review",
            ProjectSummary("ecosystem", "active", review_state="accepted"),
            "accepted",
            "brightgreen",
        ),
        (
            "review",
            ProjectSummary("ecosystem", "active", review_state="changes_requested"),
            "changes requested",
            "yellow",
        ),
        (
            "review",
            ProjectSummary("ecosystem", "active", review_state="some_new_state"),
            "some new state",
            "lightgrey",
        ),
    ],
)
def test_what_each_badge_says(kind, summary, message, color):
    badge = badges.badge_for(kind, summary)
    assert (badge.message, badge.color) == (message, color)


SNAPSHOT_CASES = {
    "compat_passing": Badge("pytorch", "2.13 | 2.14", "brightgreen"),
    "compat_failing": Badge("pytorch", "2.13, fails 2.14", "red"),
    "ecosystem_hosted": Badge("pytorch ecosystem", "hosted", "blue"),
    "review_unknown": Badge("tac review", "unknown", "lightgrey"),
    "hostile": Badge('</text><script>alert("x")</script>', "R&D \u202e\u200b", "javascript:"),
}


@pytest.mark.parametrize("name", sorted(SNAPSHOT_CASES))
def test_snapshots(name):
    rendered = badges.render_svg(SNAPSHOT_CASES[name])
    snapshot = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("UPDATE_BADGE_SNAPSHOTS") == "1":
        snapshot.write_text(rendered, encoding="utf-8")
    assert rendered == snapshot.read_text(encoding="utf-8")
