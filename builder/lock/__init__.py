"""Locking: spec + resolution -> a hash-pinned conda-lock lockfile (+ environment.yml).

Public API::

    lock(LockRequest(...)) -> LockResult      # solve conda (rattler) + PyPI (uv), pin sources
    check(LockRequest(...)) -> list[str]      # what changed vs the committed lockfile; [] = fresh
    default_lockfile_path(spec, resolution)   # <repo>/lockfiles/<name>-cu<XY>.conda-lock.yml

Reading lockfiles: :mod:`builder.lock.lockfile` (``read_lockfile``, ``envbuild_metadata``).
Heavy dependencies (rattler, uv) are imported only when a lock runs; conda-lock is
never imported: its solver backend (``--solver conda-lock``) runs it as a command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder.lock.pipeline import LockResult, default_lockfile_path
    from builder.resolve.resolution import Resolution
    from builder.spec.envspec import LoadedSpec

__all__ = ["LockRequest", "LockResult", "check", "default_lockfile_path", "lock"]


@dataclass(frozen=True)
class LockRequest:
    """One lock: which spec and resolution, where to write, where repodata comes from."""

    spec: LoadedSpec
    resolution: Resolution
    output: Path
    channel_snapshot: Path | None = None
    channels: tuple[str, ...] = ()  # --channel URL or NAME=URL
    solver: str = "rattler"
    source_overrides: Mapping[str, Path] = field(default_factory=dict)
    # check() only: compare where repodata came from too.  Off when an env is installed
    # from a committed lockfile: records carry their real URLs, so a lockfile solved from
    # a snapshot or a mirror is as good as one solved live; only what was asked for counts.
    check_channels: bool = True
    # ask PyPI even when the previous lockfile or uv's cache could answer
    refresh: bool = False
    # build toolchain gaps: alternative provider kinds allowed to fill them ("pypi"), and
    # whether a gap left after that is recorded (True) or refused (False, exit 1)
    fill_gaps: tuple[str, ...] = ()
    allow_incomplete: bool = False


def __getattr__(name: str) -> Any:
    # the pipeline (and the resolution and spec models under it) is imported on first
    # use: reading a lockfile (builder.lock.lockfile, on install's path) needs none of it
    if name in {"LockResult", "default_lockfile_path"}:
        from builder.lock import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lock(req: LockRequest) -> LockResult:
    """Solve and write ``req.output`` (atomically) and the environment.yml beside it."""
    from builder.lock.api import run_lock

    return run_lock(req)


def check(req: LockRequest) -> list[str]:
    """What changed since ``req.output`` was written ([] when it is fresh)."""
    from builder.lock.api import run_check

    return run_check(req)
