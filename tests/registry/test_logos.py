"""Project logos: imported with the landscape (checked, capped, heavy ones rendered small), and
served only as images by our own view, under a sandboxing policy, never inlined in a page."""

import io
import struct
import textwrap
import zlib

import pytest
from django.core.management import call_command
from django.urls import reverse

from registry import logos
from registry.models import Logo, Project

pytestmark = pytest.mark.django_db

SANDBOX = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
SVG_LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 20">'
    '<rect width="40" height="20" fill="#c2410c"/></svg>'
)
HOSTILE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10" onload="alert(1)">'
    "<script>alert(document.cookie)</script>"
    '<rect width="10" height="10" fill="red"/></svg>'
)


def run_import(path) -> str:
    out = io.StringIO()
    call_command("import_landscape", str(path), stdout=out)
    return out.getvalue()


def png(width: int, height: int) -> bytes:
    """A valid PNG of one colour (8-bit grey)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        logos.PNG_MAGIC
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def heavy_svg(extra: str = "") -> str:
    """A heavy SVG: many small shapes, as real exported logos have."""
    shapes = "".join(
        f'<circle cx="{i % 100}" cy="{(i * 7) % 50}" r="1.5" fill="#2563eb"/>' for i in range(900)
    )
    body = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 50">{extra}{shapes}</svg>'
    assert len(body) > 30_000
    return body


def landscape_with_logos(tmp_path, files: dict[str, bytes | str]) -> object:
    """A landscape file with one project per logo file name, and its landscape-logos/ folder."""
    folder = tmp_path / "landscape-logos"
    folder.mkdir()
    for name, content in files.items():
        if content is None:
            continue
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    items = "".join(
        f"""
                  - item:
                    name: Project {index}
                    logo: {name!r}
                    repo_url: https://github.com/org/project{index}
        """
        for index, name in enumerate(files)
    )
    path = tmp_path / "landscape.yml"
    path.write_text(
        textwrap.dedent(
            """
            landscape:
              - category:
                name: Training
                subcategories:
                  - subcategory:
                    name: General
                    items:"""
        )
        + textwrap.indent(textwrap.dedent(items), " " * 10)
    )
    return path


def stored_logo(project_name: str) -> Logo | None:
    return Project.objects.select_related("logo_file").get(name=project_name).logo_file


# --- import -------------------------------------------------------------------------------------


def test_the_real_landscape_imports_every_projects_logo(real_landscape_path):
    summary = run_import(real_landscape_path)

    assert "logos:" in summary and "new files stored" in summary
    assert not Project.objects.filter(logo_file__isnull=True).exists()
    vllm = Project.objects.select_related("logo_file").get(slug="vllm")
    assert vllm.logo_file.content_type == "image/svg+xml"
    assert vllm.logo_file.source_name == vllm.logo
    assert Project.objects.get(slug="ray").logo_file.content_type == "image/png"
    # Every logo gets a small card rendering; the heaviest (1.2 MB: an SVG wrapping a raster) too.
    assert not Logo.objects.filter(card_png__isnull=True).exists()
    gpytorch = Project.objects.select_related("logo_file").get(slug="gpytorch")
    assert len(bytes(gpytorch.logo_file.data)) > 1_000_000
    card = bytes(gpytorch.logo_file.card_png)
    assert card.startswith(logos.PNG_MAGIC) and len(card) < 40_000
    width, height = struct.unpack(">II", card[16:24])
    assert height == logos.CARD_HEIGHT_PX and 0 < width <= logos.CARD_MAX_WIDTH_PX

    again = run_import(real_landscape_path)
    assert "unchanged 143" in again and "logos: 0 new files stored" in again


def test_a_changed_logo_file_updates_the_project(tmp_path):
    path = landscape_with_logos(tmp_path, {"a.svg": SVG_LOGO})
    run_import(path)
    first = stored_logo("Project 0").sha256
    (tmp_path / "landscape-logos" / "a.svg").write_text(SVG_LOGO.replace("c2410c", "2563eb"))

    assert "updated 1" in run_import(path)
    assert stored_logo("Project 0").sha256 != first


def test_without_a_logo_folder_logos_are_left_as_they_were(tmp_path):
    path = landscape_with_logos(tmp_path, {"a.svg": SVG_LOGO})
    run_import(path)
    sha256 = stored_logo("Project 0").sha256
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "landscape.yml").write_text(path.read_text())

    summary = run_import(moved / "landscape.yml")

    assert "unchanged 1" in summary and "logos left as they were" in summary
    assert stored_logo("Project 0").sha256 == sha256


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("huge.svg", None, "larger than the 2048 KB allowed"),
        ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100, "neither an SVG nor"),
        ("page.svg", "<html><body>not an image</body></html>", "neither an SVG nor a PNG"),
        ("text.png", "just text, named like a PNG", "neither an SVG nor a PNG"),
        ("bomb.svg", '<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>', "neither an SVG nor"),
        ("giant.png", None, "too large"),
        ("missing.svg", None, "no such file"),
    ],
)
def test_a_file_that_cannot_be_a_logo_is_refused_and_flagged(tmp_path, name, content, reason):
    path = landscape_with_logos(tmp_path, {name: content, "good.svg": SVG_LOGO})
    folder = tmp_path / "landscape-logos"
    if name == "huge.svg":
        padding = "<!--" + "x" * logos.MAX_LOGO_BYTES + "-->"
        (folder / name).write_text(SVG_LOGO.replace("</svg>", padding + "</svg>"))
    if name == "giant.png":
        (folder / name).write_bytes(png(1, 1)[:16] + struct.pack(">II", 20_000, 20_000))

    summary = run_import(path)

    assert "created 2" in summary and "flagged 1" in summary
    assert f"flagged: Project 0: logo {name!r}" in summary and reason in summary
    refused = Project.objects.get(name="Project 0")
    assert refused.logo_file is None
    assert (
        refused.flags == [{"code": "logo", "message": refused.flags[0]["message"]}]
        and "imported without a logo" in refused.flags[0]["message"]
    )
    assert stored_logo("Project 1") is not None
    assert Logo.objects.count() == 1


def test_a_logo_name_that_leaves_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.svg").write_text(SVG_LOGO)
    path = landscape_with_logos(tmp_path, {"../secret.svg": None})

    summary = run_import(path)

    assert "not a plain file name" in summary
    assert Logo.objects.count() == 0


def test_a_png_logo_is_kept_as_it_is_and_rendered_for_the_cards(tmp_path):
    small, large = png(40, 20), png(1200, 400)
    path = landscape_with_logos(tmp_path, {"small.png": small, "large.png": large})
    run_import(path)

    assert bytes(stored_logo("Project 0").data) == small
    for name, size in [("Project 0", (192, 96)), ("Project 1", (288, 96))]:
        card = bytes(stored_logo(name).card_png)
        assert card.startswith(logos.PNG_MAGIC)
        assert struct.unpack(">II", card[16:24]) == size


def test_an_svg_is_rendered_at_the_card_height_keeping_its_shape(tmp_path):
    """With or without a viewBox (without one, an <img> would crop the SVG, not shrink it)."""
    fixed = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="100">'
        '<rect width="400" height="100"/></svg>'
    )
    path = landscape_with_logos(tmp_path, {"fixed.svg": fixed, "scalable.svg": SVG_LOGO})
    run_import(path)

    for name, size in [("Project 0", (384, 96)), ("Project 1", (192, 96))]:
        card = bytes(stored_logo(name).card_png)
        assert struct.unpack(">II", card[16:24]) == size


def test_the_card_rendering_reads_nothing_outside_the_file(tmp_path):
    """An SVG that points at a local image renders exactly as if the reference were not there."""
    (tmp_path / "local.png").write_bytes(png(50, 50))
    referencing = heavy_svg(
        f'<image href="{tmp_path / "local.png"}" width="100" height="50"/>'
        f'<image xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="local.png" '
        'width="100" height="50"/><image href="https://example.org/x.png" width="9" height="9"/>'
    )

    def card(svg: str) -> bytes:
        data = svg.encode()
        logo = logos.LogoFile(
            name="x.svg", sha256=str(hash(data)), content_type=logos.SVG, data=data
        )
        return logos.logo_card_png(logo)

    assert card(referencing) == card(heavy_svg())
    assert card(referencing).startswith(logos.PNG_MAGIC)


# --- serving ------------------------------------------------------------------------------------


def test_the_logo_view_serves_an_image_in_a_sandbox_with_long_caching(client, tmp_path):
    path = landscape_with_logos(tmp_path, {"a.svg": SVG_LOGO, "heavy.svg": heavy_svg()})
    run_import(path)
    light, heavy = stored_logo("Project 0"), stored_logo("Project 1")

    for url, content_type, body in [
        (reverse("registry:logo", args=[light.sha256]), "image/svg+xml", SVG_LOGO.encode()),
        (reverse("registry:logo_card", args=[light.sha256]), "image/png", bytes(light.card_png)),
        (reverse("registry:logo", args=[heavy.sha256]), "image/svg+xml", heavy_svg().encode()),
        (reverse("registry:logo_card", args=[heavy.sha256]), "image/png", bytes(heavy.card_png)),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"] == content_type
        assert response.content == body
        assert response["Content-Security-Policy"] == SANDBOX
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Cache-Control"] == "public, max-age=31536000, immutable"
        again = client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
        assert again.status_code == 304 and again.content == b""
        assert client.head(url).status_code == 200
        assert client.post(url).status_code == 405

    assert client.get(reverse("registry:logo", args=["0" * 64])).status_code == 404
    assert client.get("/logos/not-a-hash").status_code == 404


def test_a_hostile_svg_is_never_inlined_only_served_sandboxed(client, tmp_path):
    path = landscape_with_logos(tmp_path, {"hostile.svg": HOSTILE_SVG})
    run_import(path)
    logo = stored_logo("Project 0")
    project = Project.objects.get(name="Project 0")

    card_url = reverse("registry:logo_card", args=[logo.sha256])
    for page in (reverse("registry:landscape"), project.get_absolute_url()):
        html = client.get(page).content.decode()
        assert f'<img class="logo" src="{card_url}"' in html
        assert "alert(" not in html and "onload=" not in html

    served = client.get(reverse("registry:logo", args=[logo.sha256]))
    assert served.content == HOSTILE_SVG.encode()  # kept as it is, but only ever as an image:
    assert served["Content-Type"] == "image/svg+xml"
    assert served["Content-Security-Policy"] == SANDBOX


def test_the_original_is_served_for_the_cards_when_it_could_not_be_rendered(client, tmp_path):
    path = landscape_with_logos(tmp_path, {"a.svg": SVG_LOGO})
    run_import(path)
    Logo.objects.update(card_png=None)
    logo = stored_logo("Project 0")

    response = client.get(reverse("registry:logo_card", args=[logo.sha256]))
    assert response["Content-Type"] == "image/svg+xml" and response.content == SVG_LOGO.encode()
    assert response["Content-Security-Policy"] == SANDBOX


def test_pages_show_a_placeholder_without_a_logo(client):
    Project.objects.create(slug="plain", name="plain")
    for page in (reverse("registry:landscape"), "/projects/plain/"):
        assert '<span class="logo placeholder" aria-hidden="true">P</span>' in (
            client.get(page).content.decode()
        )


def test_logos_and_pages_are_compressed_for_browsers_that_accept_it(client, tmp_path):
    import gzip

    path = landscape_with_logos(tmp_path, {"heavy.svg": heavy_svg()})
    run_import(path)
    url = reverse("registry:logo", args=[stored_logo("Project 0").sha256])

    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert response["Content-Encoding"] == "gzip" and "Accept-Encoding" in response["Vary"]
    assert gzip.decompress(response.content) == heavy_svg().encode()
    assert response["Content-Security-Policy"] == SANDBOX
    again = client.get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    page = client.get(reverse("registry:landscape"), HTTP_ACCEPT_ENCODING="gzip")
    assert page["Content-Encoding"] == "gzip"
