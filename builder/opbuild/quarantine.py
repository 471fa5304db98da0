"""Builds that compiled but failed a later check are kept, not thrown away.

Layout beside the store's published entries::

    quarantine/<key>/<name>.whl     the wheel exactly as built (never installed)
    quarantine/<key>/build.log      its build log
    quarantine/<key>/reason.json    {"check", "message", "wheel_sha256", "schema"}

A quarantined build is never a cache hit: :meth:`builder.opbuild.store.Store.lookup` sees
only ``ops/<key>``.  The next build of the same key finds it here and runs the checks
again on the kept wheel instead of compiling (a missing dependency added since, say);
when they pass it is published like a fresh build and the quarantined copy removed.
Every write happens under the key's store lock, and a kept wheel whose sha256 no longer
matches ``reason.json`` is discarded (and the op compiled again).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import ValidationError

from builder.models import Frozen as _Frozen
from builder.util.fs import atomic_write_text
from builder.util.hashing import sha256_file

SCHEMA = 1


class KeptBuild(_Frozen):
    """A quarantined build."""

    key: str
    path: Path
    wheel: Path
    log: Path
    check: str  # the check that failed: "check-targets", "check-deps", "check-import"
    message: str


def quarantine_dir(store_root: Path, key: str) -> Path:
    """Where ``key``'s quarantined build lives (whether or not it exists)."""
    return store_root / "quarantine" / key


def keep(store_root: Path, key: str, wheel: Path, log: Path, check: str, message: str) -> Path:
    """Move ``wheel`` and ``log`` into quarantine for ``key`` (replacing an older one).

    The caller holds ``key``'s store lock.  Returns the quarantine dir.
    """
    final = quarantine_dir(store_root, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        shutil.move(str(wheel), tmp / wheel.name)
        if log.exists():
            shutil.copy2(log, tmp / "build.log")
        reason = {"schema": SCHEMA, "check": check, "message": message,
                  "wheel": wheel.name, "wheel_sha256": sha256_file(tmp / wheel.name)}
        atomic_write_text(tmp / "reason.json", json.dumps(reason, indent=2, sort_keys=True))
        os.chmod(tmp, 0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def kept(store_root: Path, key: str) -> KeptBuild | None:
    """The quarantined build of ``key``, or None; a tampered or broken one is removed."""
    d = quarantine_dir(store_root, key)
    try:
        reason = json.loads((d / "reason.json").read_text(encoding="utf-8"))
        wheel = d / str(reason["wheel"])
        if "/" in str(reason["wheel"]) or sha256_file(wheel) != reason["wheel_sha256"]:
            raise ValueError("wheel does not match its record")
        return KeptBuild(key=key, path=d, wheel=wheel, log=d / "build.log",
                         check=str(reason["check"]), message=str(reason["message"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        shutil.rmtree(d, ignore_errors=True)
        return None


def restore(build: KeptBuild, out: Path) -> Path:
    """Copy the kept wheel and log into a store temp dir ``out``; returns the wheel copy."""
    (out / "dist").mkdir(parents=True, exist_ok=True)
    wheel = out / "dist" / build.wheel.name
    shutil.copy2(build.wheel, wheel)
    if build.log.exists():
        shutil.copy2(build.log, out / "build.log")
    return wheel


def release(store_root: Path, key: str) -> None:
    """Remove ``key``'s quarantined build (after it was published)."""
    shutil.rmtree(quarantine_dir(store_root, key), ignore_errors=True)


def notice(where: Path) -> str:
    """The lines a failed check adds: where the wheel and log are, and what happens next."""
    return (f"the wheel and its build log are kept, quarantined (never installed, never a "
            f"cache hit): {where}\n  build log: {where / 'build.log'}\n"
            "once the cause is fixed, run the same build again: the kept wheel is checked "
            "again instead of compiling")
