"""What a lockfile tells every later stage: its ``envbuild.warnings``, read cheaply.

``install``, ``env`` and ``onboard.sh`` (through ``install``) print these before they
start, so a gap recorded at lock time (a fallback nvcc, a header piece filled from PyPI,
a toolchain locked with ``--allow-incomplete``) is seen by whoever installs the file.
"""

from __future__ import annotations

from pathlib import Path


def lockfile_warnings(path: Path) -> list[str]:
    """The lockfile's warnings; [] when it cannot be read (the stage itself reports that)."""
    from builder.errors import EnvbuildError
    from builder.lock.lockfile import envbuild_metadata, read_lockfile

    if not Path(path).is_file():
        return []
    try:
        return list(envbuild_metadata(read_lockfile(Path(path)), Path(path)).warnings)
    except (EnvbuildError, ValueError, TypeError, AttributeError):
        return []
