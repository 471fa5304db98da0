"""Content hashes with an explicit contract.

* :func:`payload_digest` hashes an explicit, versioned payload:
  ``sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")))``.
  Callers build the payload by hand (schema version first); never a model dump.
* :func:`tree_digest` hashes a directory tree: for each file, sorted by POSIX
  relative path, the line ``f <mode> <relpath> <sha256>`` (the
  executable bit as mode ``x``/``-``).  Symbolic links are followed (:func:`walk_tree`):
  a link counts as the content it points to, so changing a link's target changes the
  digest, and a tree copied with its links dereferenced has the same digest.  Links out
  of the tree, loops and special files are refused.  Directories themselves, mtimes and
  owners do not count.  (Trees without links hash as they did before links were
  followed; a tree with links hashes differently from older envbuilds, which hashed
  the link text.)
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from builder.errors import UsageError

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


class UnhashableTree(UsageError):
    """A tree that cannot be hashed by content: a link out of it, a loop, a special file."""


def walk_tree(root: Path, exclude: Callable[[str], bool] | None = None
              ) -> Iterator[tuple[str, Path]]:
    """``(relative POSIX path, real file)`` for every file in ``root``, sorted by path.

    Symbolic links are followed: a link to a file is that file's content under the link's
    name, a link to a directory is that directory's files under the link's name.  A link
    that leaves ``root`` (resolved), dangles or loops, and any FIFO, socket or device, is
    refused (:class:`UnhashableTree`) before anything is read (reading a FIFO would hang).
    """
    base = Path(os.path.realpath(root))
    yield from sorted(_walk(base, Path(root), "", exclude, (base,)))


def _walk(base: Path, here: Path, rel_dir: str, exclude: Callable[[str], bool] | None,
          chain: tuple[Path, ...]) -> Iterator[tuple[str, Path]]:
    for name in sorted(os.listdir(here)):
        rel = f"{rel_dir}{name}"
        if exclude is not None and exclude(rel):
            continue
        path = here / name
        real = Path(os.path.realpath(path))
        if path.is_symlink() and not (real == base or real.is_relative_to(base)):
            raise UnhashableTree(f"{path}: a symbolic link to {os.readlink(path)}, outside "
                                 f"the source tree {base}", hint=_LINK_HINT)
        try:
            st = os.stat(path)
        except OSError:
            raise UnhashableTree(f"{path}: a symbolic link to {os.readlink(path)}, which "
                                 "does not exist", hint=_LINK_HINT) from None
        if stat.S_ISDIR(st.st_mode):
            if real in chain:
                raise UnhashableTree(f"{path}: a symbolic link loop (to {real})",
                                     hint=_LINK_HINT)
            yield from _walk(base, path, f"{rel}/", exclude, (*chain, real))
        elif stat.S_ISREG(st.st_mode):
            yield rel, path
        else:
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket"
                    if stat.S_ISSOCK(st.st_mode) else "a device file")
            raise UnhashableTree(f"{path}: {kind} is not source content",
                                 hint="remove it from the source tree (or move it out)")


_LINK_HINT = ("copy the file into the source tree, or point the link at a path inside it; "
              "links are hashed by what they point to")


def iter_tree(root: Path, exclude: Callable[[str], bool] | None = None) -> list[str]:
    """Relative POSIX paths of the files under ``root`` (links followed), sorted."""
    return [rel for rel, _ in walk_tree(root, exclude)]


def tree_digest(root: Path, exclude: Callable[[str], bool] | None = None) -> str:
    """sha256 over a tree's file contents, modes and names (see module docstring)."""
    h = hashlib.sha256()
    for rel, real in walk_tree(root, exclude):
        mode = "x" if os.access(real, os.X_OK) else "-"
        h.update(f"f {mode} {rel} {sha256_file(real)}\n".encode())
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
