"""Where envbuild keeps its state.  Read from the environment at call time, never import time.

* ``ENVBUILD_HOME`` (default ``$XDG_CACHE_HOME/envbuild`` or ``~/.cache/envbuild``):
  package cache, source cache, crash reports.
* ``ENVBUILD_STORE`` (default ``$ENVBUILD_HOME/store``): the content-addressed op
  store; point several users at one shared path on a team server.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Root of envbuild's caches."""
    explicit = os.environ.get("ENVBUILD_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "envbuild"


def store() -> Path:
    """Root of the content-addressed build store."""
    explicit = os.environ.get("ENVBUILD_STORE")
    return Path(explicit).expanduser() if explicit else home() / "store"


def pkgs_cache() -> Path:
    """Shared conda package cache (hash-checked archives and extracted packages)."""
    return home() / "pkgs"


def sources_cache() -> Path:
    """Fetched git sources, by commit."""
    return home() / "sources"


def crash_dir() -> Path:
    """Where unexpected exceptions are written as crash reports."""
    return home() / "crash"
