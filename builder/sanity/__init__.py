"""Kernel sanity checks: our own reference implementations and the checks run in a prefix.

``msda_reference.py`` and ``run_checks.py`` are executed by the PREFIX's python
(they import only torch and the standard library); :mod:`builder.sanity.report`
runs them and turns their JSON into a report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.sanity.report import SanityReport


def run_sanity(prefix: Path, kinds: tuple[str, ...] = ()) -> SanityReport:
    """Run the kernel checks in ``prefix`` (see :func:`builder.sanity.report.run_sanity`)."""
    from builder.sanity.report import run_sanity as _run

    return _run(prefix, kinds)
