"""Byte-reproducible op builds: the same key on the same toolchain gives the same wheel.

Three things made two builds of one key differ, and each is removed here:

* **Paths.**  The build runs in a fresh temp dir under the store (a random name), and the
  prefix, its site dir and the toolkit live wherever the user put them.  gcc writes them
  into ``__FILE__`` strings (asserts in torch's headers) and into debug info (python's
  ``CFLAGS`` carry ``-g``).  :func:`prefix_map_flags` maps each to a fixed name with
  ``-ffile-prefix-map`` (it implies ``-fdebug-prefix-map`` and ``-fmacro-prefix-map``),
  given to gcc through ``CFLAGS``/``CXXFLAGS`` and to nvcc's host and preprocessing passes
  through ``NVCC_APPEND_FLAGS`` (``-Xcompiler``), which nvcc reads itself.  gcc does not
  record these options in ``DW_AT_producer``, so the random path leaves no trace.
  nvcc names its intermediate files ``tmpxft_<pid>_...cudafe1.cpp`` and gcc records that
  name as the object's ``FILE`` symbol; ``--objdir-as-tempdir`` (nvcc >= 12.x) names them
  after the object file instead.  An nvcc without it cannot give byte-identical ``.so``
  files, and the build says so (:func:`nvcc_flags`).
* **Time.**  ``SOURCE_DATE_EPOCH`` fixes the zip timestamps setuptools writes.
* **The archive.**  :func:`normalize_wheel` rewrites the wheel with members sorted, one
  fixed timestamp and normalised modes, whatever setuptools or the umask did.

Contract: :data:`RECIPE` names this recipe and goes into every store key's ``flags``;
change it whenever the flags or the normalisation change, so no older build is served.
:func:`compare_wheels` reports which members of two wheels differ (``--check-reproducible``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import zipfile
from pathlib import Path

from builder.models import Frozen as _Frozen
from builder.util.cmd import run

RECIPE = "reproducible=1"
# 1980-01-01: the earliest time a zip member can carry (and what wheel uses as its floor)
EPOCH = 315532800
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def prefix_maps(work: Path, prefix: Path, site_dirs: list[Path],
                toolkit: Path | None) -> list[tuple[Path, str]]:
    """(real path, fixed name) pairs, outermost first.

    gcc tries the *last* matching option first, so inner paths (a PyPI toolkit inside
    site-packages, the build dir) come after the dirs that contain them.
    """
    pairs: list[tuple[Path, str]] = [(prefix, "/envbuild/prefix")]
    pairs += [(d, f"/envbuild/site{i or ''}") for i, d in enumerate(site_dirs)]
    pairs += [(toolkit, "/envbuild/cuda")] if toolkit is not None else []  # None: a CPU build
    pairs += [(work, "/envbuild/build")]
    seen: set[str] = set()
    out = []
    for real, fixed in sorted(pairs, key=lambda p: len(str(p[0]))):
        for variant in dict.fromkeys((str(real), os.path.realpath(real))):
            if variant not in seen:
                seen.add(variant)
                out.append((Path(variant), fixed))
    return out


def prefix_map_flags(maps: list[tuple[Path, str]]) -> list[str]:
    """``-ffile-prefix-map=OLD=NEW`` for each pair, in the order given."""
    return [f"-ffile-prefix-map={real}={fixed}" for real, fixed in maps]


@functools.lru_cache(maxsize=8)
def _nvcc_help(nvcc: Path) -> str:
    return run([nvcc, "--help"], check=False).stdout


def nvcc_flags(nvcc: Path | None) -> tuple[tuple[str, ...], str | None]:
    """nvcc's own flags for a reproducible build, and a warning when one is missing."""
    if nvcc is None:
        return (), None
    if "--objdir-as-tempdir" in _nvcc_help(nvcc):
        return ("--objdir-as-tempdir",), None
    return (), (f"{nvcc} has no --objdir-as-tempdir: its random temp file names end up in the "
                "extension's symbol table, so this build is not byte-reproducible")


def reproducible_env(maps: list[tuple[Path, str]], base: dict[str, str],
                     nvcc_extra: tuple[str, ...] = ()) -> dict[str, str]:
    """The variables to add to a build env (``base`` supplies any CFLAGS already set)."""
    flags = prefix_map_flags(maps)
    gcc = " ".join(shlex.quote(f) for f in flags)
    nvcc = " ".join([*nvcc_extra, *(f"-Xcompiler={shlex.quote(f)}" for f in flags)])

    def joined(name: str, extra: str) -> str:
        return " ".join(p for p in (base.get(name, ""), extra) if p)

    return {
        "CFLAGS": joined("CFLAGS", gcc),
        "CXXFLAGS": joined("CXXFLAGS", gcc),
        "NVCC_APPEND_FLAGS": joined("NVCC_APPEND_FLAGS", nvcc),
        "SOURCE_DATE_EPOCH": str(EPOCH),
        "PYTHONHASHSEED": "0",
    }


def normalize_wheel(wheel: Path) -> None:
    """Rewrite ``wheel`` in place: sorted members, fixed time, modes 0644/0755, deflate.

    The RECORD keeps matching (it hashes member contents, which do not change); the
    ``.dist-info`` members go last, as the wheel spec recommends.
    """
    with zipfile.ZipFile(wheel) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist() if not info.is_dir()]

    def order(item: tuple[zipfile.ZipInfo, bytes]) -> tuple[bool, str]:
        name = item[0].filename
        return (name.split("/", 1)[0].endswith(".dist-info"), name)

    tmp = wheel.with_name(wheel.name + ".norm")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info, data in sorted(members, key=order):
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            executable = (info.external_attr >> 16) & 0o111
            fixed.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.create_system = 3  # unix, so the mode bits are read
            out.writestr(fixed, data, compresslevel=6)
    os.replace(tmp, wheel)


class MemberDiff(_Frozen):
    """One wheel member that differs between two builds (sha256 None: absent there)."""

    name: str
    first: str | None
    second: str | None


class ReproCheck(_Frozen):
    """The outcome of one rebuild-and-compare."""

    stored_sha256: str
    rebuilt_sha256: str
    identical: bool
    seconds: float  # the whole second build and the comparison
    differing: tuple[MemberDiff, ...] = ()


def member_digests(wheel: Path) -> dict[str, str]:
    """``{member name: sha256 of its bytes}`` for every file in a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        return {i.filename: hashlib.sha256(zf.read(i)).hexdigest()
                for i in zf.infolist() if not i.is_dir()}


def compare_wheels(first: Path, second: Path) -> list[MemberDiff]:
    """Every member whose bytes differ (or that only one wheel has), sorted by name."""
    a, b = member_digests(first), member_digests(second)
    return [MemberDiff(name=n, first=a.get(n), second=b.get(n))
            for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
