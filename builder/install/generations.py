"""Atomic generations of a prefix: build aside, switch with one ``os.replace``.

Layout (``PREFIX`` is what the user names, e.g. ``.envbuild/envs/demo-cpu``)::

    PREFIX                  -> symlink to PREFIX.envbuild-gens/<n>  (relative target)
    PREFIX.envbuild-gens/
        .lock               per-prefix file lock (held for a whole install / env run)
        <n>/                a complete generation (has .envbuild/state.json)
        <n>.partial/        a generation being built; removed by the next run if found

Why this keeps prefix replacement correct: every generation is linked with the
*final* path ``PREFIX`` as the prefix written into text files (rattler's
``alternative_target_prefix``), so shebangs and config files always say
``PREFIX/...`` and reach the current generation through the symlink.  Python
derives ``sys.prefix`` from the path it was started by (``PREFIX/bin/python``),
so it also reports ``PREFIX``.  Switching is ``os.replace`` of a fresh symlink
over ``PREFIX``: atomic on POSIX, so a reader sees the old or the new generation.

Crash safety: nothing the current generation uses is touched before the switch;
a kill at any moment leaves at worst a ``.partial`` dir or a stray temp link,
both removed by :meth:`Generations.recover` on the next run (under the lock).
The previous generation is kept for ``envbuild rollback``; older ones are pruned.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from builder.errors import CheckFailed, UsageError
from builder.util.fs import file_lock, remove_tree

GENS_SUFFIX = ".envbuild-gens"
UNSAFE_PREFIX_CHARS = "\"'\\`$:"
STATE_REL = Path(".envbuild") / "state.json"


def absolute(prefix: Path) -> Path:
    """``prefix`` made absolute *without* resolving the symlink it may be."""
    return Path(os.path.abspath(os.path.expanduser(prefix)))


def usable_prefix(prefix: Path) -> Path:
    """``prefix`` (absolute) when envbuild can make it its own; a usage error otherwise:
    a filesystem root, a name too long for its generations dir, control characters, or a
    path inside another prefix's generations."""
    text = str(prefix)
    if prefix.parent == prefix or not prefix.name:
        raise UsageError(f"--prefix {text}: a filesystem root cannot be an environment",
                         hint="name a new directory, e.g. --prefix ./.envbuild/envs/NAME")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise UsageError(f"--prefix {text!r}: control characters (newlines, tabs) in a path "
                         "break activation scripts", hint="choose a plain path")
    bad = sorted(set(text) & set(UNSAFE_PREFIX_CHARS))
    if bad:
        raise UsageError(f"--prefix {text}: {' '.join(bad)} in a prefix path break python's "
                         "own configuration, PATH or shell scripts",
                         hint="choose a path without quotes, backslashes, '$', '`' or ':' "
                              "(spaces and non-ASCII letters are fine)")
    if len(os.fsencode(prefix.name + GENS_SUFFIX)) > 255 or len(os.fsencode(text)) > 3800:
        raise UsageError(f"--prefix: the name {prefix.name[:40]!r}... is too long (at most "
                         f"{255 - len(GENS_SUFFIX)} bytes, the path at most 3800)",
                         hint="choose a shorter --prefix")
    if any(part.endswith(GENS_SUFFIX) for part in prefix.parts):
        raise UsageError(f"--prefix {text}: inside envbuild's own generations directory",
                         hint="pass the prefix itself (the symlink), not one of its generations")
    return prefix


class Generations:
    """The generations of one prefix."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = usable_prefix(absolute(prefix))
        self.root = self.prefix.with_name(self.prefix.name + GENS_SUFFIX)

    def exists(self) -> bool:
        """Whether envbuild has made anything for this prefix (nothing is created)."""
        return self.prefix.is_symlink() or self.root.is_dir()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the per-prefix lock; a second process waits and says so.  When the run
        fails before anything was made for the prefix, the lock's directory goes too."""
        fresh = not self.exists()
        with file_lock(self.root / ".lock", what=f"prefix {self.prefix}"):
            try:
                yield
            except BaseException:
                if fresh:
                    self._remove_if_unused()
                raise

    def _remove_if_unused(self) -> None:
        """Remove ``NAME.envbuild-gens`` when it holds nothing but the lock (lock held)."""
        if self.prefix.is_symlink() or not self.root.is_dir():
            return
        if {p.name for p in self.root.iterdir()} <= {".lock"}:
            (self.root / ".lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.root.rmdir()

    def current(self) -> int | None:
        """Number of the generation ``PREFIX`` points at, or None."""
        if not self.prefix.is_symlink():
            return None
        target = Path(os.readlink(self.prefix))
        if target.parent.name != self.root.name or not target.name.isdigit():
            return None
        return int(target.name)

    def path(self, n: int) -> Path:
        """Directory of generation ``n``."""
        return self.root / str(n)

    def complete(self) -> list[int]:
        """Numbers of complete generations, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir()
                      if p.name.isdigit() and (p / STATE_REL).is_file())

    def check_prefix(self) -> None:
        """Refuse a ``PREFIX`` that exists and was not made by envbuild."""
        p = self.prefix
        if p.is_symlink():
            if self.current() is None:
                raise UsageError(f"{p} is a symlink envbuild did not make "
                                 f"(-> {os.readlink(p)})",
                                 hint="choose another --prefix or remove the link")
            return
        if p.is_dir() and not any(p.iterdir()):
            p.rmdir()
        elif p.exists():
            raise UsageError(f"{p} exists and is not an envbuild prefix",
                             hint="choose another --prefix, or move that directory away")

    def recover(self) -> None:
        """Remove leftovers of an interrupted run (call with the lock held)."""
        if not self.root.is_dir():
            return
        cur = self.current()
        for p in self.root.iterdir():
            stray_link = p.name.startswith(".link-")
            partial = p.name.endswith(".partial")
            orphan = p.name.isdigit() and int(p.name) != cur and not (p / STATE_REL).is_file()
            if stray_link:
                p.unlink(missing_ok=True)
            elif partial or orphan:
                remove_tree(p, inside=self.root, ignore_errors=True)

    def new_partial(self) -> tuple[int, Path]:
        """A fresh, empty ``<n>.partial`` dir for the next generation number."""
        self.root.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name.split(".")[0]) for p in self.root.iterdir()
                   if p.name.split(".")[0].isdigit()]
        n = max(numbers, default=0) + 1
        partial = self.root / f"{n}.partial"
        partial.mkdir()
        return n, partial

    def publish(self, n: int, partial: Path) -> Path:
        """Rename a finished ``<n>.partial`` to ``<n>`` (still not current)."""
        final = self.path(n)
        os.replace(partial, final)
        return final

    def switch(self, n: int) -> None:
        """Point ``PREFIX`` at generation ``n`` in one atomic step."""
        if not (self.path(n) / STATE_REL).is_file():
            raise CheckFailed(f"generation {n} of {self.prefix} is not complete")
        tmp = self.root / f".link-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(os.path.join(self.root.name, str(n)), tmp)
        os.replace(tmp, self.prefix)
        _fsync_dir(self.prefix.parent)

    def prune(self, keep: set[int]) -> list[int]:
        """Delete complete generations not in ``keep``; return their numbers."""
        gone = [n for n in self.complete() if n not in keep]
        for n in gone:
            remove_tree(self.path(n), inside=self.root, ignore_errors=True)
        return gone


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
