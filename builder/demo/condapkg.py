"""Write real conda packages (``.conda`` v2 archives) from a directory of files.

Used by :mod:`builder.demo.localchannel` to make an offline channel that the real
installer (py-rattler) accepts: ``info/index.json``, ``info/paths.json`` with a
sha256, size and (for text files that embed the build prefix) a
``prefix_placeholder`` per file, ``info/files``, and the two zstd tarballs
inside an uncompressed zip, exactly as ``conda-package-handling`` lays them out.

Only text files get a prefix placeholder: binary replacement needs a placeholder
at least as long as the install path, which a host interpreter never has.  ELF
files whose RUNPATH names the build prefix are instead rewritten in place to an
``$ORIGIN``-relative RUNPATH (:func:`relativize_runpath`), which keeps them
relocatable without padding.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

ELF_MAGIC = b"\x7fELF"


class PackageMeta(BaseModel):
    """What goes into ``info/index.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    build: str = "0"
    build_number: int = 0
    depends: tuple[str, ...] = ()
    subdir: str = "linux-64"
    license: str = "unknown"
    noarch: str | None = None

    @property
    def stem(self) -> str:
        """``name-version-build``: the archive's file name without ``.conda``."""
        return f"{self.name}-{self.version}-{self.build}"


def index_json(meta: PackageMeta) -> dict[str, object]:
    """The ``info/index.json`` payload."""
    data: dict[str, object] = {
        "name": meta.name,
        "version": meta.version,
        "build": meta.build,
        "build_number": meta.build_number,
        "depends": list(meta.depends),
        "license": meta.license,
        "subdir": meta.subdir,
        "timestamp": int(time.time() * 1000),
    }
    if meta.subdir != "noarch":
        data["arch"], data["platform"] = "x86_64", "linux"
    if meta.noarch:
        data["noarch"] = meta.noarch
    return data


def _is_text(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(8192)
    return b"\0" not in head


def paths_entry(root: Path, rel: str, placeholder: str | None) -> dict[str, object]:
    """One ``paths.json`` entry; text files holding ``placeholder`` get it recorded."""
    full = root / rel
    if full.is_symlink():
        return {"_path": rel, "path_type": "softlink",
                "sha256": hashlib.sha256(os.readlink(full).encode()).hexdigest(),
                "size_in_bytes": len(os.readlink(full))}
    data = full.read_bytes()
    entry: dict[str, object] = {"_path": rel, "path_type": "hardlink",
                                "sha256": hashlib.sha256(data).hexdigest(),
                                "size_in_bytes": len(data)}
    if placeholder and placeholder.encode() in data and _is_text(full):
        entry["prefix_placeholder"] = placeholder
        entry["file_mode"] = "text"
    return entry


def list_files(root: Path) -> list[str]:
    """Relative POSIX paths of files and symlinks under ``root``, sorted."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *links]:
            out.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(out)


def _tar_zst(root: Path, rels: Iterable[str], extra: dict[str, bytes]) -> bytes:
    import zstandard

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in rels:
            info = tar.gettarinfo(str(root / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(root / rel, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
        for name, blob in extra.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(blob), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(blob))
    return zstandard.ZstdCompressor(level=3, threads=-1).compress(raw.getvalue())


def write_conda(root: Path, meta: PackageMeta, out_dir: Path,
                placeholder: str | None = None) -> Path:
    """Pack the files under ``root`` as ``out_dir/<subdir>/<stem>.conda`` and return its path."""
    rels = list_files(root)
    paths = [paths_entry(root, rel, placeholder) for rel in rels]
    info = {
        "info/index.json": json.dumps(index_json(meta), indent=2, sort_keys=True).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=2).encode(),
        "info/files": ("\n".join(rels) + "\n").encode(),
        "info/about.json": json.dumps({"summary": f"{meta.name} (local channel)"}).encode(),
    }
    target = out_dir / meta.subdir / f"{meta.stem}.conda"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        zf.writestr(f"pkg-{meta.stem}.tar.zst", _tar_zst(root, rels, {}))
        zf.writestr(f"info-{meta.stem}.tar.zst", _tar_zst(root, [], info))
    os.replace(tmp, target)
    return target


def relativize_runpath(path: Path, old_libdir: str, new_libdir: Path) -> bool:
    """Rewrite an ELF RUNPATH/RPATH equal to ``old_libdir`` to ``$ORIGIN/<rel>`` in place.

    The new string is never longer than the old one (checked), so the string table
    keeps its layout; the tail is NUL-padded.  Returns whether the file changed.
    """
    data = path.read_bytes()
    if not data.startswith(ELF_MAGIC):
        return False
    needle = b"\0" + old_libdir.encode() + b"\0"
    if needle not in data:
        return False
    rel = os.path.relpath(new_libdir, path.parent)
    new = f"$ORIGIN/{rel}".encode()
    if len(new) > len(old_libdir):
        return False
    replacement = b"\0" + new + b"\0" * (len(needle) - len(new) - 1)
    mode = stat.S_IMODE(path.stat().st_mode)
    path.chmod(mode | stat.S_IWUSR)
    path.write_bytes(data.replace(needle, replacement))
    path.chmod(mode)
    return True
