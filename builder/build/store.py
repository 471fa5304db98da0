"""The content-addressed op store.

Layout under :func:`builder.paths.store` (tagged with ``CACHEDIR.TAG``)::

    ops/<key>/            one published build: the wheel, build.log, meta.json
    ops/<key>/.complete   marker, written last; an entry without it does not exist
    locks/<key>.lock      one advisory lock per key (safe on a shared ENVBUILD_STORE)
    tmp/<key>-<random>/   builds in progress (same filesystem, so os.replace publishes)

A temp dir is only ever made by a process holding ``locks/<key>.lock``.  A killed build
leaves its temp dir behind; the next build of that key removes it as soon as it holds the
lock, and every build sweeps the temp dirs of other keys whose lock nobody holds.

Key contract: ``key = sha256(json.dumps(payload, sort_keys=True))`` where payload is
``{"schema": KEY_SCHEMA, "op", "source", "fixups", "torch", "torch_cuda", "nvcc",
"compiler", "arch_list", "python_abi", "cxx_std", "flags"}``, built by hand in
:func:`op_key`.  Bump ``KEY_SCHEMA`` when the meaning of any field changes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from builder import paths
from builder.util.fs import (
    atomic_write_text,
    ensure_cachedir_tag,
    file_lock,
    temp_dir_in,
    try_file_lock,
)
from builder.util.hashing import payload_digest

KEY_SCHEMA = 1
MARKER = ".complete"


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


class Store:
    """One store root; every method is safe under concurrent processes."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else paths.store()

    def entry_dir(self, key: str) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists)."""
        return self.root / "ops" / key

    def lookup(self, key: str) -> StoreEntry | None:
        """The complete entry for ``key``, or None (a dir without the marker is ignored)."""
        d = self.entry_dir(key)
        if not (d / MARKER).is_file():
            return None
        wheels = sorted(d.glob("*.whl"))
        if len(wheels) != 1:
            return None
        return StoreEntry(key=key, path=d, wheel=wheels[0], log=d / "build.log")

    def lock_path(self, key: str) -> Path:
        """The advisory lock file of ``key``'s entry and temp dirs."""
        return self.root / "locks" / f"{key}.lock"

    def get_or_build(
        self, key: str, build: Callable[[Path], None], meta: dict[str, object],
    ) -> tuple[StoreEntry, bool]:
        """Return ``(entry, hit)``; on a miss run ``build(tmpdir)`` as a transaction.

        ``build`` must leave exactly one ``*.whl`` (and ``build.log``) in ``tmpdir`` and
        raise on any failure, including a failed check; the temp dir is then removed.
        """
        found = self.lookup(key)
        if found is not None:
            return found, True
        ensure_cachedir_tag(self.root)
        with file_lock(self.lock_path(key), what=f"store entry {key[:12]}"):
            found = self.lookup(key)
            if found is not None:
                return found, True
            # whoever made these held this lock and is gone (killed mid-build)
            self._remove_temp_dirs(key)
            self.sweep_temp_dirs()
            with temp_dir_in(self.root / "tmp", prefix=f"{key}-") as tmp:
                build(tmp)
                atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2, sort_keys=True))
                final = self.entry_dir(key)
                if final.exists():  # a half-published entry (no marker) from a killed process
                    shutil.rmtree(final)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                tmp.mkdir()  # temp_dir_in removes it again on exit
            atomic_write_text(final / MARKER, key + "\n")
        entry = self.lookup(key)
        assert entry is not None
        return entry, False

    def evict(self, key: str) -> None:
        """Remove ``key``'s entry (marker first, so it stops existing before it is deleted)."""
        with file_lock(self.lock_path(key), what=f"store entry {key[:12]}"):
            d = self.entry_dir(key)
            (d / MARKER).unlink(missing_ok=True)
            shutil.rmtree(d, ignore_errors=True)

    def _remove_temp_dirs(self, key: str) -> None:
        """Remove ``key``'s leftover temp dirs; the caller holds ``key``'s lock."""
        tmp = self.root / "tmp"
        for d in sorted(tmp.glob(f"{key}-*")) if tmp.is_dir() else ():
            shutil.rmtree(d, ignore_errors=True)

    def sweep_temp_dirs(self) -> list[str]:
        """Remove temp dirs whose key lock nobody holds (their builder is gone); returns them.

        Dirs named with a shortened key (older envbuild: ``<key[:12]>-*``) are removed only
        when no lock of a key starting with that prefix is held.
        """
        tmp = self.root / "tmp"
        removed = []
        for d in sorted(tmp.iterdir()) if tmp.is_dir() else ():
            stem = d.name.rsplit("-", 1)[0]
            locks = ([self.lock_path(stem)] if len(stem) == 64
                     else sorted((self.root / "locks").glob(f"{stem}*.lock")))
            if self._all_free(locks, d):
                removed.append(d.name)
        return removed

    @staticmethod
    def _all_free(locks: list[Path], victim: Path) -> bool:
        """Remove ``victim`` while holding every lock in ``locks``; False if one is held."""
        if not locks:
            shutil.rmtree(victim, ignore_errors=True)
            return True
        with try_file_lock(locks[0]) as got:
            return got and Store._all_free(locks[1:], victim)
