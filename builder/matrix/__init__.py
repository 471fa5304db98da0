"""The compatibility matrix: versioned data files, their models, and queries.

Knowledge lives in ``data/*.yaml`` (one ``source:`` per row, citing compat-facts' S#
references and a trust level); code here only loads and queries it.  A new torch
release is a data change.  :func:`load_matrix` parses once per process and caches the
parsed data on disk keyed by :func:`matrix_version`.
"""

from __future__ import annotations

from builder.matrix.load import load_matrix


def matrix_version() -> str:
    """The version string of the installed matrix data (goes into every Resolution)."""
    return str(load_matrix().version)


__all__ = ["load_matrix", "matrix_version"]
