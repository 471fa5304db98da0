"""Where a spec's lockfile and default env live: one rule, used by every command.

Specs live in ``<project>/envspecs/``: the lockfile of spec ``name`` for CUDA ``11.7`` is
``<spec dir>/../lockfiles/<name>-cu117.conda-lock.yml`` and its env is
``<project>/.envbuild/envs/<name>-cu117``, where ``<project>`` is the directory holding
``envspecs/`` (or the spec's own directory when the spec is elsewhere).
"""

from __future__ import annotations

from pathlib import Path


def cuda_tag(cuda: str) -> str:
    """``cu117`` for CUDA 11.7, ``cpu`` for a CPU-only target (lockfile and prefix names)."""
    return "cpu" if cuda == "cpu" else "cu" + cuda.replace(".", "")


def lockfile_path(spec_path: Path, name: str, cuda: str) -> Path:
    """The spec's default lockfile for ``cuda`` (see the module docstring)."""
    root = spec_path.resolve().parent.parent
    return root / "lockfiles" / f"{name}-{cuda_tag(cuda)}.conda-lock.yml"


def env_prefix(spec_path: Path, name: str, cuda: str) -> Path:
    """The spec's default env prefix for ``cuda`` (see the module docstring)."""
    spec_dir = spec_path.resolve().parent
    project = spec_dir.parent if spec_dir.name == "envspecs" else spec_dir
    return project / ".envbuild" / "envs" / f"{name}-{cuda_tag(cuda)}"
