"""Tiny wheels written with zipfile for local find-links dirs: any package, and stand-in
`torch` builds of many versions (a few lines each), so the resolver, the agent and bisection
run for real over many torch releases in seconds.

Stand-in versions must not exist on the public index (it stays configured beside a find-links
dir): use 9.x. A stand-in's behaviour is a function of its version alone, as a real build's is:
the agent caches one torch environment per version (across test sessions too), so two
stand-ins of one version must never differ. What every stand-in has (`STANDIN_API`):
- `torch.__version__` and `torch.version.cuda` (None), as real builds have them;
- `torch.old_api()`: returns 1 and warns "torch.old_api is deprecated, use torch.new_api"
  (FutureWarning) from inside torch, a deprecated API for the warnings harvest;
- `torch.legacy_add(a, b)`: below 9.4.0 only, an API a release removes (for bisection).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from packaging.version import Version


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


STANDIN_API = """
import warnings


def old_api():
    warnings.warn("torch.old_api is deprecated, use torch.new_api", FutureWarning, stacklevel=2)
    return 1
"""
LEGACY_ADD = """

def legacy_add(a, b):
    return a + b
"""
LEGACY_ADD_REMOVED_IN = Version("9.4.0")


def standin_torch(directory: Path, version: str) -> Path:
    """A stand-in `torch` wheel of `version` (e.g. "9.3.0" or "9.3.0+cpu") with the APIs the
    module docstring lists."""
    body = STANDIN_API
    if Version(version) < LEGACY_ADD_REMOVED_IN:
        body += LEGACY_ADD
    init = f"__version__ = {version!r}\nfrom torch import version\n" + body
    return write_wheel(
        directory,
        name="torch",
        version=version,
        files={
            "torch/__init__.py": init,
            "torch/version.py": f"__version__ = {version!r}\ncuda = None\n",
        },
    )


def standin_torch_releases(directory: Path, versions: list[str]) -> Path:
    """Stand-in torch wheels of each of `versions` in `directory` (a find-links dir)."""
    for version in versions:
        standin_torch(directory, version)
    return directory
