"""The content-addressed op store.

Layout under :func:`builder.paths.store` (tagged with ``CACHEDIR.TAG``)::

    ops/<key>/            one published build: the wheel, build.log, meta.json
    ops/<key>/.complete   marker, written last: JSON ``{"key", "wheel", "sha256"}``;
                          an entry without it does not exist
    ops/.evicted-<key>-*  entries moved aside by an eviction, removed by their owner
    locks/<key>.lock      one advisory lock per key (safe on a shared ENVBUILD_STORE)
    tmp/<key>-<random>/   builds in progress (same filesystem, so os.replace publishes)
    build/<ident>/        the fixed dir one op source is compiled in (under its own lock)
    quarantine/<key>/     a build that compiled but failed a check (builder.opbuild.quarantine)

A shared store is a root directory its group may write (``chgrp TEAM; chmod 2775``).
There, whatever the umask of the member who builds, envbuild makes its directories
group-writable (setgid, so the group is inherited) and its lock files group-writable,
and publishes entries read-only for everyone (files 0444/0555, the entry dir 0555).

A hit is verified before it is returned: the wheel's sha256 must equal the one the
marker recorded at publish, and the one this user pinned the first time they used the
key (``$ENVBUILD_HOME/store-pins/<key>``, which other store members cannot write); an
entry writable by group or others is refused too.  A refused entry is evicted and
rebuilt, and the user is told why.

A temp dir is only ever made by a process holding ``locks/<key>.lock``.  A killed build
leaves its temp dir behind; the next build of that key removes it as soon as it holds the
lock, and every build sweeps the temp dirs of other keys whose lock nobody holds.

Key contract: ``key = sha256(json.dumps(payload, sort_keys=True))`` where payload is
``{"schema": KEY_SCHEMA, "op", "source", "fixups", "torch", "torch_cuda", "nvcc",
"compiler", "arch_list", "python_abi", "cxx_std", "flags"}``, built by hand in
:func:`op_key`.  Bump ``KEY_SCHEMA`` when the meaning of any field changes.  A CPU build
(no toolkit) has ``"nvcc": "none"`` and an empty ``"arch_list"``; CUDA keys are unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from builder import paths
from builder.util.fs import (
    atomic_write_text,
    ensure_cachedir_tag,
    file_lock,
    remove_tree,
    temp_dir_in,
    try_file_lock,
)
from builder.util.hashing import payload_digest, sha256_file

KEY_SCHEMA = 1
MARKER = ".complete"
EVICTED = ".evicted-"


class KeyInputs(BaseModel):
    """Everything that decides the bytes of a built op."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: str
    source_digest: str
    fixups: tuple[str, ...]  # name@version, in application order
    torch_version: str
    torch_cuda: str
    nvcc_version: str  # full, e.g. "13.0.88"
    compiler: str  # e.g. "g++ 12.2.0"
    arch_list: tuple[str, ...]
    python_abi: str  # SOABI, e.g. "cpython-311-x86_64-linux-gnu"
    cxx_std: str
    flags: tuple[str, ...] = ()  # extra env/flags that change the output, "NAME=value"


def op_key(inputs: KeyInputs) -> str:
    """The store key: sha256 of the explicit, versioned payload (see module docstring)."""
    payload = {
        "schema": KEY_SCHEMA,
        "op": inputs.op,
        "source": inputs.source_digest,
        "fixups": list(inputs.fixups),
        "torch": inputs.torch_version,
        "torch_cuda": inputs.torch_cuda,
        "nvcc": inputs.nvcc_version,
        "compiler": inputs.compiler,
        "arch_list": list(inputs.arch_list),
        "python_abi": inputs.python_abi,
        "cxx_std": inputs.cxx_std,
        "flags": sorted(inputs.flags),
    }
    return payload_digest(payload)


class StoreEntry(BaseModel):
    """A published build."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    path: Path
    wheel: Path
    log: Path
    sha256: str  # the wheel's, as recorded in the marker at publish


class Store:
    """One store root; every method is safe under concurrent processes."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else paths.store()

    def entry_dir(self, key: str) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists)."""
        return self.root / "ops" / key

    def lookup(self, key: str) -> StoreEntry | None:
        """The complete entry for ``key``, or None (a dir without a readable marker naming
        one wheel is ignored).  Not verified: :meth:`verify` does that."""
        d = self.entry_dir(key)
        try:
            record = json.loads((d / MARKER).read_text(encoding="utf-8"))
            wheels = sorted(d.glob("*.whl"))
        except (OSError, ValueError):
            return None
        if (not isinstance(record, dict) or len(wheels) != 1
                or record.get("wheel") != wheels[0].name
                or not isinstance(record.get("sha256"), str)):
            return None
        return StoreEntry(key=key, path=d, wheel=wheels[0], log=d / "build.log",
                          sha256=record["sha256"])

    def verify(self, entry: StoreEntry) -> str | None:
        """Why ``entry`` must not be used, or None when its wheel is the one published."""
        for what in (entry.path, entry.wheel):
            if what.lstat().st_mode & 0o022 or what.is_symlink():
                return f"{what} is writable by others than its owner (or a link)"
        actual = sha256_file(entry.wheel)
        if actual != entry.sha256:
            return f"its wheel's sha256 {actual[:12]} is not the {entry.sha256[:12]} recorded"
        pinned = self._pin(entry.key)
        if pinned is not None and pinned != actual:
            return (f"its wheel's sha256 {actual[:12]} is not the {pinned[:12]} this user "
                    "used before (the entry was replaced)")
        return None

    def build_dir(self, ident: str) -> Path:
        """The fixed dir an op's source is compiled in (``build/<ident>``; ident names the op,
        its source digest and fixups).  nvcc names a file's internal symbols after its
        absolute path, so one source must always compile in the same place to give the same
        bytes; keys of one source (other arch lists) share the dir, one at a time, so ccache
        sees the same paths for them too.  Use it only under :meth:`build_lock`."""
        return self.root / "build" / ident

    @contextlib.contextmanager
    def build_lock(self, ident: str) -> Iterator[Path]:
        """Hold the lock of :meth:`build_dir` ``ident`` (taken after a key's lock, never
        before one); yields the dir."""
        self._mkdirs()
        with file_lock(self.root / "locks" / f"build-{ident}.lock",
                       what=f"build dir {ident[:12]}", mode=self._lock_mode()):
            yield self.build_dir(ident)

    @contextlib.contextmanager
    def key_lock(self, key: str) -> Iterator[None]:
        """Hold ``key``'s lock (the one :meth:`get_or_build` takes)."""
        self._mkdirs()
        with file_lock(self.lock_path(key), what=f"store entry {key[:12]}",
                       mode=self._lock_mode()):
            yield

    def lock_path(self, key: str) -> Path:
        """The advisory lock file of ``key``'s entry and temp dirs."""
        return self.root / "locks" / f"{key}.lock"

    def get_or_build(
        self, key: str, build: Callable[[Path], None], meta: dict[str, object],
        log: Callable[[str], None] | None = None,
    ) -> tuple[StoreEntry, bool]:
        """Return ``(entry, hit)``; on a miss run ``build(tmpdir)`` as a transaction.

        ``build`` must leave exactly one ``*.whl`` (and ``build.log``) in ``tmpdir`` and
        raise on any failure, including a failed check; the temp dir is then removed.
        A hit that fails :meth:`verify` is evicted (``log`` says why) and rebuilt.
        """
        found = self._verified(key, log)
        if found is not None:
            return found, True
        ensure_cachedir_tag(self.root)
        self._mkdirs()
        with file_lock(self.lock_path(key), what=f"store entry {key[:12]}",
                       mode=self._lock_mode()):
            found = self._verified(key, log, locked=True)
            if found is not None:
                return found, True
            # whoever made these held this lock and is gone (killed mid-build)
            self._remove_temp_dirs(key)
            self.sweep_temp_dirs()
            with temp_dir_in(self.root / "tmp", prefix=f"{key}-") as tmp:
                build(tmp)
                self._publish(key, tmp, meta)
                tmp.mkdir()  # temp_dir_in removes it again on exit
        entry = self.lookup(key)
        assert entry is not None
        self._write_pin(key, entry.sha256)
        return entry, False

    def _verified(self, key: str, log: Callable[[str], None] | None,
                  locked: bool = False) -> StoreEntry | None:
        """The entry for ``key`` if it passes :meth:`verify`; a failing one is evicted."""
        found = self.lookup(key)
        if found is None:
            return None
        problem = self.verify(found)
        if problem is None:
            self._write_pin(key, found.sha256)
            return found
        if log:
            log(f"refusing stored build {key[:12]}: {problem}; removing it and building again")
        if locked:
            self._move_aside(self.entry_dir(key))
        else:
            self.evict(key)
        return None

    def _publish(self, key: str, tmp: Path, meta: dict[str, object]) -> Path:
        """Move the built ``tmp`` to its entry dir, read-only, marker last."""
        wheels = sorted(tmp.glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"a build must leave one wheel, not {len(wheels)}")
        sha = sha256_file(wheels[0])
        atomic_write_text(tmp / "meta.json", json.dumps(
            {**meta, "wheel": wheels[0].name, "wheel_sha256": sha}, indent=2, sort_keys=True))
        _read_only_tree(tmp)
        final = self.entry_dir(key)
        if final.exists() or final.is_symlink():  # half-published (no marker): killed publish
            self._move_aside(final)
        os.chmod(tmp, 0o755)
        os.replace(tmp, final)
        atomic_write_text(final / MARKER, json.dumps(
            {"key": key, "wheel": wheels[0].name, "sha256": sha}, sort_keys=True) + "\n",
            mode=0o444)
        os.chmod(final, 0o555)
        return final

    def evict(self, key: str) -> None:
        """Remove ``key``'s entry: first moved aside (so it stops existing at once), then
        deleted as far as this user may (another member's leftovers go at their sweep)."""
        with file_lock(self.lock_path(key), what=f"store entry {key[:12]}",
                       mode=self._lock_mode()):
            self._move_aside(self.entry_dir(key))

    def _move_aside(self, d: Path) -> None:
        if not (d.exists() or d.is_symlink()):
            return
        aside = d.with_name(f"{EVICTED}{d.name}-{os.getpid()}-{os.urandom(4).hex()}")
        os.rename(d, aside)  # same parent: needs write access to ops/ only
        with contextlib.suppress(OSError):
            remove_tree(aside, inside=self.root)

    def _remove_temp_dirs(self, key: str) -> None:
        """Remove ``key``'s leftover temp dirs; the caller holds ``key``'s lock."""
        tmp = self.root / "tmp"
        for d in sorted(tmp.glob(f"{key}-*")) if tmp.is_dir() else ():
            with contextlib.suppress(OSError):
                remove_tree(d, inside=self.root)

    def _shared(self) -> bool:
        """A store its group may write: one a team shares."""
        try:
            return bool(self.root.stat().st_mode & 0o020)
        except OSError:
            return False

    def _lock_mode(self) -> int | None:
        return 0o664 if self._shared() else None

    def _mkdirs(self) -> None:
        """``ops/``, ``locks/`` and ``tmp/``; in a shared store group-writable and setgid."""
        shared = self._shared()
        for name in ("ops", "locks", "tmp", "build", "quarantine"):
            d = self.root / name
            d.mkdir(parents=True, exist_ok=True)
            if shared and d.stat().st_uid == os.getuid():
                with contextlib.suppress(OSError):
                    os.chmod(d, 0o2775)

    def _pin_path(self, key: str) -> Path:
        return paths.home() / "store-pins" / key

    def _pin(self, key: str) -> str | None:
        try:
            return self._pin_path(key).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def _write_pin(self, key: str, sha: str) -> None:
        if self._pin(key) != sha:
            with contextlib.suppress(OSError):
                atomic_write_text(self._pin_path(key), sha + "\n", mode=0o600)

    def sweep_temp_dirs(self) -> list[str]:
        """Remove temp dirs whose key lock nobody holds (their builder is gone); returns them.

        Dirs named with a shortened key (older envbuild: ``<key[:12]>-*``) are removed only
        when no lock of a key starting with that prefix is held.
        """
        tmp = self.root / "tmp"
        removed = []
        ops = self.root / "ops"
        for d in sorted(ops.glob(f"{EVICTED}*")) if ops.is_dir() else ():
            if d.stat().st_uid == os.getuid():
                with contextlib.suppress(OSError):
                    remove_tree(d, inside=self.root)
        for d in sorted(tmp.iterdir()) if tmp.is_dir() else ():
            stem = d.name.rsplit("-", 1)[0]
            locks = ([self.lock_path(stem)] if len(stem) == 64
                     else sorted((self.root / "locks").glob(f"{stem}*.lock")))
            if self._all_free(locks, d):
                removed.append(d.name)
        return removed

    def _all_free(self, locks: list[Path], victim: Path) -> bool:
        """Remove ``victim`` while holding every lock in ``locks``; False if one is held."""
        if not locks:
            with contextlib.suppress(OSError):
                remove_tree(victim, inside=self.root)
            return True
        with try_file_lock(locks[0]) as got:
            return got and self._all_free(locks[1:], victim)


def _read_only_tree(root: Path) -> None:
    """Files 0444 (0555 when executable), directories below ``root`` 0555."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, 0o555 if os.stat(p).st_mode & 0o100 else 0o444)
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o555)
