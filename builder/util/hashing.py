"""Content hashes with an explicit contract.

* :func:`payload_digest` hashes an explicit, versioned payload:
  ``sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")))``.
  Callers build the payload by hand (schema version first); never a model dump.
* :func:`tree_digest` hashes a directory tree: for each regular file and symlink,
  sorted by POSIX relative path, the line ``<kind> <mode> <relpath> <sha256>``
  (kind ``f`` with the executable bit as mode ``x``/``-``; kind ``l`` with the
  link target's sha256).  Directories themselves, mtimes and owners do not count.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def md5_file(path: Path) -> str:
    """Hex md5 of a file's bytes (conda records carry both)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def payload_digest(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of an explicit payload."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def iter_tree(root: Path, exclude: Callable[[str], bool] | None = None) -> Iterable[str]:
    """Relative POSIX paths of files and symlinks under ``root``, sorted."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        keep = []
        for d in dirnames:
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            full = os.path.join(dirpath, d)
            if exclude is not None and exclude(rel):
                continue
            if os.path.islink(full):
                out.append(rel)
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            if exclude is not None and exclude(rel):
                continue
            out.append(rel)
    return sorted(p.replace(os.sep, "/") for p in out)


def tree_digest(root: Path, exclude: Callable[[str], bool] | None = None) -> str:
    """sha256 over a tree's file contents, modes and names (see module docstring)."""
    h = hashlib.sha256()
    for rel in iter_tree(root, exclude):
        full = root / rel
        if full.is_symlink():
            target = os.readlink(full)
            line = f"l - {rel} {hashlib.sha256(target.encode()).hexdigest()}\n"
        else:
            mode = "x" if os.access(full, os.X_OK) else "-"
            line = f"f {mode} {rel} {sha256_file(full)}\n"
        h.update(line.encode("utf-8"))
    return h.hexdigest()


def default_source_exclude(rel: str) -> bool:
    """Paths never part of a source's content: VCS metadata and stale build output."""
    first = rel.split("/", 1)[0]
    name = rel.rsplit("/", 1)[-1]
    return (
        first in {".git", ".hg", ".svn"}
        or name in {"build", "__pycache__", ".eggs", "dist"}
        or name.endswith((".egg-info", ".pyc", ".so", ".o"))
    )
