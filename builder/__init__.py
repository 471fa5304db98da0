"""envbuild: hash-pinned conda environments for CUDA deep-learning projects."""

from __future__ import annotations

__version__ = "0.1.0"
