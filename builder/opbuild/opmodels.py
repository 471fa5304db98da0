"""The request, result and timed steps of one op build (:mod:`builder.opbuild.ops`).

Kept apart from the build itself so the candidate checks (:mod:`candidate`) and the
install plan can use them without importing the builder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.errors import CheckFailed
from builder.models import Frozen as _Frozen
from builder.opbuild.deps import OpRequirement
from builder.opbuild.fixups import PlannedFixup
from builder.opbuild.gpugate import GpuGate
from builder.opbuild.records import OpOrigin
from builder.opbuild.reproducible import ReproCheck


class OpBuildRequest(_Frozen):
    """One op to build into one prefix."""

    name: str
    source_dir: Path  # the op's directory (the one with setup.py)
    prefix: Path
    arch_list: tuple[str, ...]
    fixups: tuple[str, ...] = ()  # requested (spec and matrix); more may be chosen from source
    skip_fixups: tuple[str, ...] = ()  # automatic fixups the spec switched off
    cxx_std: str | None = None  # from the resolution; else derived from torch's version
    require_cuobjdump: bool = False  # fail (not warn) when no cuobjdump can be found
    origin: OpOrigin = OpOrigin()  # where the code came from (records, messages)
    sanity: str | None = None
    requirements: tuple[OpRequirement, ...] = ()  # the matrix's pins for the op's source
    spec: Path | None = None  # named in messages ("add to SPEC under pip:")


class Step(_Frozen):
    """One named step and how long it took."""

    name: str
    seconds: float
    detail: str = ""


class OpBuildResult(_Frozen):
    """What happened: the key, the stored wheel, whether it was a hit, and every step."""

    name: str
    key: str
    wheel: Path
    cache_hit: bool
    installed: bool
    wheel_sha256: str = ""
    rechecked: bool = False  # a quarantined build passed its checks again (no compile)
    reproducible: ReproCheck | None = None  # with --check-reproducible
    steps: tuple[Step, ...]
    warnings: tuple[str, ...]
    fixups_applied: tuple[PlannedFixup, ...] = ()
    gpu_gate: GpuGate | None = None


class BuildFailed(CheckFailed):
    """A compile failed; the message carries the diagnosis and the log tail."""


class Steps:
    """Collects timed steps (and a detail line per step)."""

    def __init__(self, op: str = "") -> None:
        self.op = op
        self.steps: list[Step] = []
        self.details: dict[str, str] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        from builder.util import progress

        start = time.perf_counter()
        try:
            with progress.stage("build", f"{self.op} {name}".strip()):
                yield
        finally:
            self.steps.append(Step(name=name, seconds=round(time.perf_counter() - start, 3),
                                   detail=self.details.pop(name, "")))
