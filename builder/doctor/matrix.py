"""Adapter: the doctor's :class:`~builder.doctor.checks.Knowledge` answered by the matrix.

The compatibility facts (GPU name -> compute capability, CUDA -> minimum driver
and minor-version family floor, nvcc -> newest gcc and accepted sm targets) live
in ``builder/matrix/data``; this module only reads them through
``builder.matrix.load.load_matrix()``.  Anything the matrix does not know is None, and
the doctor then says less instead of guessing.  A matrix that fails to load is an error
like in every other command (the shipped data is broken), never a quieter doctor.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.matrix.models import CudaRelease, Matrix


def _cc_key(cc: str) -> tuple[int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)$", cc)
    return (int(m.group(1)), int(m.group(2))) if m else None


class MatrixKnowledge:
    """Knowledge read from the matrix data (see the module docstring)."""

    def __init__(self, matrix: Matrix | None = None) -> None:
        if matrix is None:
            from builder.matrix.load import load_matrix

            matrix = load_matrix()
        self._m = matrix

    def _release(self, cuda: str) -> CudaRelease | None:
        return self._m.cuda_release(cuda)

    def gpu_compute_capability(self, name: str) -> str | None:
        """CC of a GPU name: exact ``names`` match, else the ``model`` words in order."""
        rows = self._m.gpus.gpus
        for row in rows:
            if name in row.names:
                return str(row.cc)
        words = re.sub(r"[^a-z0-9]+", " ", name.lower()).split()
        text = " " + " ".join(words) + " "
        best = None
        for row in rows:
            model = " " + " ".join(row.model.lower().split()) + " "
            if model in text and (best is None or len(row.model) > len(best.model)):
                best = row
        return str(best.cc) if best is not None else None

    def min_driver(self, cuda: str) -> str | None:
        """Native minimum driver for CUDA ``X.Y``."""
        row = self._release(cuda)
        return str(row.driver_min) if row is not None else None

    def minor_compat_driver(self, cuda_major: int) -> str | None:
        """Minor-version-compatibility floor of a CUDA major."""
        floors = self._m.cuda.family_floor
        return next((str(f.driver) for f in floors if f.major == cuda_major), None)

    def max_gcc(self, nvcc: str) -> int | None:
        """Newest gcc major nvcc ``X.Y`` accepts (its host_config.h)."""
        row = self._release(nvcc)
        return int(row.gcc_max) if row is not None else None

    def max_sm(self, nvcc: str) -> str | None:
        """Newest real compute capability nvcc ``X.Y`` compiles for."""
        row = self._release(nvcc)
        if row is None:
            return None
        keys = [k for k in (_cc_key(s) for s in row.sm) if k is not None]
        return f"{max(keys)[0]}.{max(keys)[1]}" if keys else None
