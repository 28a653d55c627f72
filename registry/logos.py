"""Project logos from the landscape's logo folder: reading and checking a file, and our own PNG
rendering of it for the pages (the "card").

Third-party SVG is active content (scripts, external references). A logo is therefore never
inlined in a page: the original bytes are kept as they are and served only as an image under a
sandboxing policy (`registry.views.logo`). The pages show our card rendering: a small PNG, light
to send and cheap for a browser to draw (bench/pages.py, 75 logos: the landscape loaded in 1.15 s
with the SVG files, 0.7 s with their PNG renderings), made from a cleaned copy of the file with
every reference outside the file removed, so the renderer reads nothing but the file.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, tostring  # noqa: S405 (serialising our own tree)

from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException

SVG = "image/svg+xml"
PNG = "image/png"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Refused above this size. The real landscape's heaviest project logo is 1.2 MB (an SVG wrapping
# a large raster image); pages never load such a file, only its card rendering.
MAX_LOGO_BYTES = 2 * 1024 * 1024
# The card rendering: CARD_HEIGHT_PX tall (twice the card's height, sharp on high-density
# screens), a few kilobytes where some files weigh hundreds.
CARD_HEIGHT_PX = 96
CARD_MAX_WIDTH_PX = 6 * CARD_HEIGHT_PX
# Raster images (a PNG logo, or one embedded in an SVG) are decoded at full size to render them.
MAX_RASTER_SIDE_PX = 8192
MAX_RASTER_PIXELS = 16_000_000
FILE_NAME_RE = re.compile(r"^[^/\\\x00]{1,200}$")
UNIT_PX = {
    "": 1.0,
    "px": 1.0,
    "pt": 4 / 3,
    "pc": 16.0,
    "mm": 96 / 25.4,
    "cm": 96 / 2.54,
    "in": 96.0,
}
LENGTH_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


class LogoRefused(ValueError):
    """The file cannot be a logo; the message says why (shown in the import summary)."""


@dataclass(frozen=True)
class LogoFile:
    name: str
    sha256: str
    content_type: str
    data: bytes


def logo_read(*, directory: Path, name: str) -> LogoFile:
    """Read and check the logo file `name` of the landscape's logo `directory`."""
    if not FILE_NAME_RE.match(name) or name in {".", ".."}:
        raise LogoRefused(f"logo {name!r}: not a plain file name")
    path = directory / name
    if not path.is_file():
        raise LogoRefused(f"logo {name!r}: no such file in {directory.name}/")
    with path.open("rb") as file:
        data = file.read(MAX_LOGO_BYTES + 1)
    if len(data) > MAX_LOGO_BYTES:
        size_kb = path.stat().st_size // 1024
        raise LogoRefused(
            f"logo {name!r}: {size_kb} KB, larger than the {MAX_LOGO_BYTES // 1024} KB allowed"
        )
    return LogoFile(
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=logo_content_type(data, name=name),
        data=data,
    )


def logo_content_type(data: bytes, *, name: str = "") -> str:
    """SVG or PNG, decided by the content (never by the file name); anything else is refused."""
    if data.startswith(PNG_MAGIC):
        _png_size(data, name=name)
        return PNG
    _svg_root(data, name=name)
    return SVG


def _png_size(data: bytes, *, name: str) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise LogoRefused(f"logo {name!r}: a damaged PNG file")
    width, height = struct.unpack(">II", data[16:24])
    if not (0 < width <= MAX_RASTER_SIDE_PX and 0 < height <= MAX_RASTER_SIDE_PX) or (
        width * height > MAX_RASTER_PIXELS
    ):
        raise LogoRefused(f"logo {name!r}: PNG of {width}x{height} pixels is too large")
    return width, height


def _svg_root(data: bytes, *, name: str) -> Element:
    try:
        root = SafeElementTree.fromstring(data)
    except (DefusedXmlException, SyntaxError, ValueError):
        # SyntaxError: ParseError; ValueError: text that is not UTF-8 nor declares its encoding.
        raise LogoRefused(f"logo {name!r}: neither an SVG nor a PNG file") from None
    if root.tag != f"{{{SVG_NAMESPACE}}}svg":
        raise LogoRefused(f"logo {name!r}: neither an SVG nor a PNG file")
    return root


# --- the card rendering ---------------------------------------------------------------------

_renderings: dict[str, bytes | None] = {}  # by SHA-256: rendering is a pure function of the bytes


def logo_card_png(logo: LogoFile) -> bytes | None:
    """Our PNG rendering of a logo for the pages; None when it cannot be rendered (the pages
    then show the original, as an image all the same)."""
    if logo.sha256 not in _renderings:
        if len(_renderings) > 1024:
            _renderings.clear()
        _renderings[logo.sha256] = _render(logo)
    return _renderings[logo.sha256]


def _render(logo: LogoFile) -> bytes | None:
    import resvg_py

    try:
        svg: str | None
        if logo.content_type == PNG:
            width, height = _png_size(logo.data, name=logo.name)
            svg = _wrap_png(logo.data, width=width, height=height)
        else:
            svg = _clean_svg_for_rendering(_svg_root(logo.data, name=logo.name))
        if svg is None:
            return None
        return bytes(resvg_py.svg_to_bytes(svg_string=svg))
    except Exception:  # the renderer's errors are its own; the page falls back to the original
        return None


def _card_size(width: float, height: float) -> tuple[int, int]:
    """The rendering's size in pixels: CARD_HEIGHT_PX tall unless that makes it too wide."""
    out_height = float(CARD_HEIGHT_PX)
    out_width = out_height * width / height
    if out_width > CARD_MAX_WIDTH_PX:
        out_height, out_width = out_height * CARD_MAX_WIDTH_PX / out_width, CARD_MAX_WIDTH_PX
    return max(1, round(out_width)), max(1, round(out_height))


def _wrap_png(data: bytes, *, width: int, height: int) -> str:
    out_width, out_height = _card_size(width, height)
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<svg xmlns="{SVG_NAMESPACE}" width="{out_width}" height="{out_height}">'
        f'<image width="{out_width}" height="{out_height}" href="data:image/png;base64,{encoded}"/>'
        "</svg>"
    )


def _clean_svg_for_rendering(root: Element) -> str | None:
    """The SVG with no reference outside itself, sized for the card; None if it has no size."""
    size = _svg_intrinsic_size(root)
    if size is None:
        return None
    width, height = size
    for element in root.iter():
        for attribute in list(element.attrib):
            if attribute.rsplit("}", 1)[-1] != "href":
                continue
            value = element.attrib[attribute].strip()
            if value.startswith("#"):
                continue
            if value.startswith("data:") and _embedded_image_is_small(value):
                continue
            del element.attrib[attribute]
    if not root.get("viewBox"):
        root.set("viewBox", f"0 0 {width:g} {height:g}")
    out_width, out_height = _card_size(width, height)
    root.set("width", str(out_width))
    root.set("height", str(out_height))
    return tostring(root, encoding="unicode")


def _svg_intrinsic_size(root: Element) -> tuple[float, float] | None:
    view_box = (root.get("viewBox") or "").replace(",", " ").split()
    if len(view_box) == 4:
        try:
            width, height = float(view_box[2]), float(view_box[3])
        except ValueError:
            width = height = 0.0
        if width > 0 and height > 0:
            return width, height
    width_px, height_px = _length_px(root.get("width")), _length_px(root.get("height"))
    if width_px and height_px:
        return width_px, height_px
    return None


def _length_px(value: str | None) -> float | None:
    match = LENGTH_RE.match(value or "")
    if not match or match.group(2) not in UNIT_PX:
        return None
    length = float(match.group(1)) * UNIT_PX[match.group(2)]
    return length if length > 0 else None


def _embedded_image_is_small(uri: str) -> bool:
    """A data: URI is kept for rendering unless it holds a PNG too large to decode safely."""
    header, _, payload = uri.partition(",")
    if "image/png" not in header or ";base64" not in header:
        return True
    try:
        start = base64.b64decode(re.sub(r"\s+", "", payload[:64])[:32], validate=False)
        _png_size(start, name="embedded image")
    except (LogoRefused, ValueError):
        return False
    return True
