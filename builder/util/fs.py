"""Atomic files, per-path locks and the store's cache-dir tag.

Nothing is ever half-written: files are written to a temp file in the same
directory, fsynced, and published with ``os.replace``.  Locks are advisory
``fcntl`` locks on a sidecar file; a second process waits and says so.

Nothing is ever removed outside envbuild's own roots: every removal goes through
:func:`remove_tree`, which resolves the path first and refuses anything that is not
strictly below one of the roots it is given.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from builder.errors import EnvbuildError

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by envbuild.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a part."""
    atomic_write_many([(path, data)], mode=mode)


def atomic_write_many(items: Sequence[tuple[Path, bytes]], *, mode: int = 0o644) -> None:
    """Write several files so that none is published before all are written and synced.

    Each file is written first into an unnamed file in its directory (``O_TMPFILE``: a
    process killed while writing leaves no name behind), then all are published in
    order, back to back, each by one ``os.replace`` (put the file others read last).
    Where ``O_TMPFILE`` is not supported a named ``.NAME.PID.*.tmp`` is used, and such
    files of dead processes are swept by the next write.
    """
    staged: list[_Staged] = []
    try:
        for path, data in items:
            staged.append(_stage(path, data, mode))
        for (path, _), st in zip(items, staged, strict=True):
            st.publish(path)
    finally:
        for st in staged:
            st.discard()


class _Staged:
    """One written, synced file not yet in place: an fd (unnamed) or a named temp file."""

    def __init__(self, fd: int | None, tmp: Path | None) -> None:
        self.fd, self.tmp = fd, tmp

    def publish(self, path: Path) -> None:
        if self.fd is not None:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
            # a dir fd makes os.link use linkat(AT_SYMLINK_FOLLOW): the file, not /proc's link
            dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.link(f"/proc/self/fd/{self.fd}", tmp.name, dst_dir_fd=dirfd)
            finally:
                os.close(dirfd)
            self.tmp = tmp
        assert self.tmp is not None
        os.replace(self.tmp, path)
        self.tmp = None

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.tmp = None


def _stage(path: Path, data: bytes, mode: int) -> _Staged:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, mode)
        unnamed = os.path.exists(f"/proc/self/fd/{fd}")
    except (AttributeError, OSError):
        fd, unnamed = -1, False
    if not unnamed:
        if fd >= 0:
            os.close(fd)
        _sweep_dead_temps(path)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=path.parent)
        staged = _Staged(None, Path(name))
    else:
        staged = _Staged(fd, None)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.fchmod(fd, mode)
    except BaseException:
        if staged.fd is None:
            os.close(fd)
        staged.discard()
        raise
    if staged.fd is None:
        os.close(fd)
    return staged


def _sweep_dead_temps(path: Path) -> None:
    """Remove ``.NAME.PID.*.tmp`` left by killed writers (their pid gone, a minute old)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        try:
            if not pid.isdigit() or time.time() - tmp.stat().st_mtime < 60:
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except OSError:
            continue


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


class UnsafeRemoval(EnvbuildError):
    """A removal that would leave envbuild's own directories: refused, nothing removed."""

    exit_code = 1


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (resolved, links followed) lies strictly below ``root`` (resolved)."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real != base and real.is_relative_to(base)


def remove_tree(path: Path, *, inside: Path | tuple[Path, ...], missing_ok: bool = True,
                ignore_errors: bool = False) -> None:
    """Remove ``path`` (a tree, a file or a link) only if it lies below one of ``inside``.

    The check is made on the resolved path, so a ``..`` or a symlink that points out of
    the roots is refused (:class:`UnsafeRemoval`) and nothing is touched.  A link itself is
    removed as a link, never followed.  Read-only entries (published store entries) are
    made writable first, as far as this user may.  ``ignore_errors`` ignores what could
    not be removed (never the refusal).
    """
    roots = (inside,) if isinstance(inside, Path) else inside
    link = path.is_symlink()
    parent_ok = any(is_inside(path.parent, r) or _same(path.parent, r) for r in roots)
    if not (parent_ok if link else any(is_inside(path, r) for r in roots)):
        raise UnsafeRemoval(f"refusing to remove {path}: it is not inside "
                            + " or ".join(str(r) for r in roots),
                            hint="this is a bug or a tampered input; nothing was removed")
    if not (link or path.exists()):
        if missing_ok or ignore_errors:
            return
        raise FileNotFoundError(path)
    try:
        _remove(path, link)
    except OSError:
        if not ignore_errors:
            raise


def _remove(path: Path, link: bool) -> None:
    import shutil

    if link or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return

    def writable_then_retry(func: Callable[..., object], name: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
            func(name)

    shutil.rmtree(path, onerror=writable_then_retry)


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


@contextlib.contextmanager
def file_lock(path: Path, *, what: str | None = None, quiet: bool = False,
              mode: int | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing; with ``mode`` whatever the
    umask when given, so that every member of a shared store's group can lock it).

    When another process holds it, print once that we are waiting, then block.  A lock
    file this user may only read (another member of a shared store made it) still locks:
    ``flock`` needs no write access; only the holder's pid is then not recorded.
    """
    told = quiet
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(path, mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not told:
                holder = _read_holder(fd)
                print(
                    f"waiting for the lock on {what or path}"
                    + (f" (held by pid {holder})" if holder else "")
                    + " ...",
                    file=sys.stderr,
                )
                told = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _still_linked(fd, path):
            break
        os.close(fd)  # the holder removed the lock file with what it guarded: lock anew
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def try_file_lock(path: Path) -> Iterator[bool]:
    """Try once, without waiting, to lock an existing lock file; yields whether we hold it.

    A missing ``path`` yields True without creating it: nobody can hold a lock on a file
    that is not there (lock holders create it before doing anything under it).
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _still_linked(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _open_lock(path: Path, mode: int | None) -> int:
    """Open (creating with ``mode`` whatever the umask) a lock file; read-only if need be."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
    if mode is not None:
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)
    return fd


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""


def ensure_cachedir_tag(root: Path) -> None:
    """Tag ``root`` as a cache directory so backup tools skip it."""
    root.mkdir(parents=True, exist_ok=True)
    tag = root / "CACHEDIR.TAG"
    if not tag.exists():
        atomic_write_text(tag, CACHEDIR_TAG)


@contextlib.contextmanager
def temp_dir_in(parent: Path, prefix: str) -> Iterator[Path]:
    """A temp dir inside ``parent`` (same filesystem, so ``os.replace`` works), removed on exit."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield tmp
    finally:
        remove_tree(tmp, inside=parent, ignore_errors=True)


def wait_for(predicate: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass (used by tests and locks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval)
    return False
