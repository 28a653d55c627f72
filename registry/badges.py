"""README badges: what each badge says, and its rendering as a flat SVG or shields.io JSON.

Pure functions only (no database, no cache): `registry/badge_cache.py` feeds them and stores
their output. Every text is cleaned and escaped here, and every colour comes from an allow-list,
so nothing a project (or an attacker) can put in a name or state reaches the SVG as markup.
"""

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from html import escape

KINDS = ("ecosystem", "compat", "review")
FORMATS = ("svg", "json")
CACHE_SECONDS = 300
MAX_TEXT_CHARS = 64

# Named colours a badge may use (the shields.io palette). Anything else renders grey.
COLORS: dict[str, str] = {
    "brightgreen": "#4c1",
    "green": "#97ca00",
    "yellowgreen": "#a4a61d",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "grey": "#555",
    "lightgrey": "#9f9f9f",
}
UNKNOWN_COLOR = "lightgrey"
LABEL_COLOR = "grey"

# Advance widths (px) of Verdana at 11px, the font shields.io measures with: the glyph's advance
# in font units / 2048 * 11. Printable ASCII; other characters fall back below.
VERDANA_11PX_WIDTHS: dict[str, float] = {
    " ": 3.87, "!": 4.33, '"': 5.05, "#": 9.0, "$": 6.99, "%": 11.84, "&": 7.99, "'": 2.95,
    "(": 4.99, ")": 4.99, "*": 6.99, "+": 9.0, ",": 4.0, "-": 4.99, ".": 4.0, "/": 4.99,
    "0": 6.99, "1": 6.99, "2": 6.99, "3": 6.99, "4": 6.99, "5": 6.99, "6": 6.99, "7": 6.99,
    "8": 6.99, "9": 6.99, ":": 4.99, ";": 4.99, "<": 9.0, "=": 9.0, ">": 9.0, "?": 5.99,
    "@": 11.0, "A": 7.52, "B": 7.54, "C": 7.68, "D": 8.48, "E": 6.96, "F": 6.32, "G": 8.53,
    "H": 8.27, "I": 4.63, "J": 5.0, "K": 7.62, "L": 6.12, "M": 9.27, "N": 8.23, "O": 8.66,
    "P": 6.63, "Q": 8.66, "R": 7.65, "S": 7.52, "T": 6.78, "U": 8.05, "V": 7.52, "W": 10.88,
    "X": 7.54, "Y": 6.77, "Z": 7.54, "[": 4.99, "\\": 4.99, "]": 4.99, "^": 9.0, "_": 6.99,
    "`": 6.99, "a": 6.61, "b": 6.85, "c": 5.73, "d": 6.85, "e": 6.55, "f": 3.87, "g": 6.85,
    "h": 6.96, "i": 3.02, "j": 3.79, "k": 6.51, "l": 3.02, "m": 10.7, "n": 6.96, "o": 6.68,
    "p": 6.85, "q": 6.85, "r": 4.69, "s": 5.73, "t": 4.33, "u": 6.96, "v": 6.51, "w": 8.98,
    "x": 6.51, "y": 6.51, "z": 5.78, "{": 6.98, "|": 4.99, "}": 6.98, "~": 9.0,
    "…": 9.68, "·": 4.39,
}  # fmt: skip
# Wide (CJK, fullwidth) glyphs take about one em; any other unknown glyph about an "m" less a bit.
WIDE_CHAR_WIDTH = 11.0
FALLBACK_CHAR_WIDTH = 7.0
HORIZONTAL_PADDING = 10  # 5px each side of the text, as shields.io draws it

# Review states pushed by the reviews app (Project.review_state) and how the badge shows them.
REVIEW_COLORS: dict[str, str] = {
    "accepted": "brightgreen",
    "passing": "brightgreen",
    "draft": "lightgrey",
    "submitted": "blue",
    "automated_checks": "blue",
    "in_review": "blue",
    "voting": "blue",
    "changes_requested": "yellow",
    "fix_period": "orange",
    "failing": "orange",
    "too_early": "orange",
    "declined": "red",
    "retired": "lightgrey",
    "withdrawn": "lightgrey",
}

# The review state the landscape import gives a hosted project ("hosted since 2025-04-08",
# registry/services.py): accepted by the foundation, shown in the hosted colour.
HOSTED_SINCE = "hosted since "
HOSTED_COLOR = "blue"

_VERSION_PART = re.compile(r"\d+")


@dataclass(frozen=True)
class Badge:
    label: str
    message: str
    color: str  # a key of COLORS


@dataclass(frozen=True)
class ProjectSummary:
    """The few fields of a project that its badges show (one row, read in one query)."""

    kind: str
    status: str
    works_with: tuple[str, ...] = ()
    breaks_with: tuple[str, ...] = ()
    not_installable_with: tuple[str, ...] = ()
    review_state: str = ""
    accepted_on: str = ""  # ISO date; a hosted project's review badge shows it


@dataclass(frozen=True)
class RenderedBadge:
    body: bytes
    content_type: str
    etag: str  # strong validator, quotes included


def clean_text(value: object) -> str:
    """Text safe to measure and show: no controls, no invisible formatting, bounded length.

    Drops what XML cannot carry (NUL and other C0/C1 controls, surrogates, U+FFFE/U+FFFF) and
    format characters (zero-width spaces and joiners, bidi overrides) that could disguise a
    message; collapses whitespace; cuts to MAX_TEXT_CHARS with an ellipsis.
    """
    text = str(value)[: MAX_TEXT_CHARS * 4]
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "\t\n\r":
            kept.append(" ")
        elif category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            kept.append(char)
    text = " ".join("".join(kept).split())
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - 1].rstrip() + "…"
    return text


def text_width(text: str) -> float:
    """Width in px of `text` in Verdana 11px (the text is expected to be cleaned)."""
    width = 0.0
    for char in text:
        known = VERDANA_11PX_WIDTHS.get(char)
        if known is not None:
            width += known
        elif unicodedata.combining(char):
            continue
        elif unicodedata.east_asian_width(char) in ("W", "F"):
            width += WIDE_CHAR_WIDTH
        else:
            width += FALLBACK_CHAR_WIDTH
    return width


def safe_color(name: str) -> str:
    """The colour's allow-listed name; anything unknown becomes grey."""
    return name if name in COLORS else UNKNOWN_COLOR


def render_svg(badge: Badge) -> str:
    """The flat-style SVG of a badge (shields.io's layout, measured with the width table)."""
    label, message = clean_text(badge.label), clean_text(badge.message)
    label_width = round(text_width(label)) + HORIZONTAL_PADDING
    message_width = round(text_width(message)) + HORIZONTAL_PADDING
    total_width = label_width + message_width
    label_fill = COLORS[LABEL_COLOR]
    message_fill = COLORS[safe_color(badge.color)]
    title = escape(f"{label}: {message}", quote=True)
    label_text, message_text = escape(label, quote=True), escape(message, quote=True)
    # Text is drawn at 10x then scaled by .1, as shields.io does, for sub-pixel positioning.
    label_x, message_x = label_width * 5, (label_width * 2 + message_width) * 5
    label_length = max((label_width - HORIZONTAL_PADDING) * 10, 0)
    message_length = max((message_width - HORIZONTAL_PADDING) * 10, 0)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_width}" height="20" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total_width}" height="20" rx="3" fill="#fff"/>'
        f'</clipPath><g clip-path="url(#r)"><rect width="{label_width}" height="20" '
        f'fill="{label_fill}"/><rect x="{label_width}" width="{message_width}" height="20" '
        f'fill="{message_fill}"/><rect width="{total_width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="110">'
        f'<text aria-hidden="true" x="{label_x}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)" textLength="{label_length}">{label_text}</text>'
        f'<text x="{label_x}" y="140" transform="scale(.1)" fill="#fff" '
        f'textLength="{label_length}">{label_text}</text>'
        f'<text aria-hidden="true" x="{message_x}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)" textLength="{message_length}">{message_text}</text>'
        f'<text x="{message_x}" y="140" transform="scale(.1)" fill="#fff" '
        f'textLength="{message_length}">{message_text}</text></g></svg>'
    )


def badge_fields(badge: Badge) -> dict[str, str]:
    """What a badge shows, cleaned: its label, message and (allow-listed) colour name."""
    return {
        "label": clean_text(badge.label),
        "message": clean_text(badge.message),
        "color": safe_color(badge.color),
    }


def render_endpoint_json(badge: Badge) -> str:
    """The shields.io endpoint document (https://shields.io/badges/endpoint-badge): its schema's
    keys only, since older shields instances reject unknown ones."""
    return json.dumps(
        {"schemaVersion": 1, **badge_fields(badge), "cacheSeconds": CACHE_SECONDS},
        separators=(",", ":"),
    )


def render(badge: Badge, fmt: str) -> RenderedBadge:
    if fmt == "svg":
        body = render_svg(badge).encode()
        content_type = "image/svg+xml; charset=utf-8"
    elif fmt == "json":
        body = render_endpoint_json(badge).encode()
        content_type = "application/json"
    else:
        raise ValueError(f"Unknown badge format {fmt!r}; expected one of {FORMATS}.")
    return RenderedBadge(body=body, content_type=content_type, etag=etag_for(body))


def etag_for(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def version_sort_key(version: str) -> tuple:
    return tuple(int(part) for part in _VERSION_PART.findall(version)) or (0,), version


def _compat_badge(label: str, summary: ProjectSummary) -> Badge:
    """Passing versions; then failing ones (red) and ones the project cannot be installed with
    (orange: a compatibility fact, not an error of ours). Errored cells are in no list."""
    passing = sorted(set(summary.works_with), key=version_sort_key)
    failing = sorted(set(summary.breaks_with), key=version_sort_key)
    not_installable = sorted(set(summary.not_installable_with), key=version_sort_key)
    parts = [" | ".join(passing)] if passing else []
    if failing:
        parts.append("fails " + ", ".join(failing))
    if not_installable:
        parts.append("not installable " + ", ".join(not_installable))
    if failing:
        return Badge(label, ", ".join(parts), "red")
    if not_installable:
        return Badge(label, ", ".join(parts), "orange")
    if passing:
        return Badge(label, " | ".join(passing), "brightgreen")
    return Badge(label, "untested", "lightgrey")


def badge_for(kind: str, summary: ProjectSummary | None) -> Badge:
    """What the `kind` badge of a project says; `None` is a project we do not know."""
    label = {"ecosystem": "pytorch ecosystem", "compat": "pytorch", "review": "tac review"}[kind]
    if summary is None:
        return Badge(label, "unknown", UNKNOWN_COLOR)
    if kind == "ecosystem":
        if summary.status == "retired":
            return Badge(label, "retired", "lightgrey")
        if summary.kind == "hosted":
            return Badge(label, "hosted", HOSTED_COLOR)
        return Badge(label, "active", "brightgreen")
    if kind == "compat":
        return _compat_badge(label, summary)
    state = summary.review_state
    if not state and summary.kind == "hosted":
        # Hosted projects are accepted by the foundation, not through a TAC review.
        accepted = f", accepted {summary.accepted_on}" if summary.accepted_on else ""
        return Badge(label, f"hosted{accepted}", HOSTED_COLOR)
    if not state:
        return Badge(label, "none", "lightgrey")
    if state.startswith(HOSTED_SINCE):
        return Badge(label, state, HOSTED_COLOR)
    return Badge(label, state.replace("_", " "), REVIEW_COLORS.get(state, UNKNOWN_COLOR))
