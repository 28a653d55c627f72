"""Tiny wheels written with zipfile for local find-links dirs: any package, and stand-in
`torch` builds of many versions (a few lines each), so the resolver, the agent and bisection
run for real over many torch releases in seconds.

Stand-in versions must not exist on the public index (it stays configured beside a find-links
dir): use 9.x.
"""

from __future__ import annotations

import textwrap
import zipfile
from pathlib import Path


def write_wheel(
    directory: Path,
    *,
    name: str,
    version: str,
    files: dict[str, str],
    requires: tuple[str, ...] = (),
    extras: tuple[str, ...] = (),
    requires_python: str | None = None,
) -> Path:
    """A pure-Python wheel holding `files` (path in the wheel -> text), with the metadata and
    dependencies it declares; returns its path in `directory`."""
    dist = f"{name.replace('-', '_')}-{version}"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Python: {requires_python}"] if requires_python else []
    metadata += [f"Provides-Extra: {extra}" for extra in extras]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    contents = {
        **files,
        f"{dist}.dist-info/METADATA": "\n".join(metadata) + "\n",
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: ecoreg-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = [f"{path},," for path in contents] + [f"{dist}.dist-info/RECORD,,"]
    contents[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
    return wheel


def standin_torch(directory: Path, version: str, *, body: str = "") -> Path:
    """A stand-in `torch` wheel of `version` (e.g. "9.3.0" or "9.3.0+cpu"): `torch.__version__`
    and `torch.version.cuda` (None) as real builds have them, plus `body`, Python code run at
    the end of `torch/__init__.py` (an API that warns, or breaks from some version on)."""
    init = f"__version__ = {version!r}\nfrom torch import version\n" + textwrap.dedent(body)
    return write_wheel(
        directory,
        name="torch",
        version=version,
        files={
            "torch/__init__.py": init,
            "torch/version.py": f"__version__ = {version!r}\ncuda = None\n",
        },
    )


def standin_torch_releases(directory: Path, versions: list[str], *, body: str = "") -> Path:
    """Stand-in torch wheels of each of `versions` in `directory` (a find-links dir)."""
    for version in versions:
        standin_torch(directory, version, body=body)
    return directory
