"""The conda layer: solver protocol, solved records, solver registry, toolchain nvcc choice.

A solver turns match specs into exact :class:`CondaRecord` s for one platform,
against a :class:`~builder.lock.channels.ChannelPlan`, with the *target's*
virtual packages (``__cuda``, ``__glibc``, ...) taken from the resolution and
never detected on the locking machine.  Solvers live in :data:`SOLVERS`;
the rattler one (in process, default) and conda-lock's own (when a conda,
mamba or micromamba binary exists) implement the same :class:`CondaSolver`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from builder.lock.channels import ChannelPlan

# Virtual packages every linux target has; the resolution may override them.
LINUX_VIRTUAL_DEFAULTS = {"__unix": "0", "__linux": "0", "__glibc": "2.17"}


class CondaRecord(BaseModel):
    """One solved conda package, as the lockfile records it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    url: str  # the real download URL, without credentials
    channel: str  # the channel URL (no subdir)
    md5: str | None
    sha256: str | None
    depends: tuple[str, ...] = ()
    timestamp_ms: int | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class CondaSolveRequest:
    """What one conda solve needs."""

    specs: tuple[str, ...]
    plan: ChannelPlan
    platform: str = "linux-64"
    virtual_packages: Mapping[str, str] = field(default_factory=dict)
    exclude_newer: dt.datetime | None = None
    # spec -> where it came from ("conda[0] in envspecs/x.yaml:12"), for explanations
    origins: Mapping[str, str] = field(default_factory=dict)
    context: str = ""  # "mask2former, CUDA 11.7" for messages

    @property
    def subdirs(self) -> tuple[str, str]:
        return (self.platform, "noarch")


class CondaSolver(Protocol):
    """A conda solver backend."""

    name: str

    def unavailable_reason(self) -> str | None:
        """None when usable here, else why not (e.g. no conda binary on PATH)."""
        ...

    def solve(self, req: CondaSolveRequest) -> list[CondaRecord]:
        """Exact records for ``req`` or a ConflictError explaining why none exist."""
        ...

    def has_match(self, req: CondaSolveRequest, spec: str) -> bool:
        """True when the channels hold at least one record matching ``spec``."""
        ...


def _rattler() -> CondaSolver:
    from builder.lock.solve_rattler import RattlerSolver

    return RattlerSolver()


def _conda_lock() -> CondaSolver:
    from builder.lock.solve_condalock import CondaLockSolver

    return CondaLockSolver()


SOLVERS: dict[str, Callable[[], CondaSolver]] = {
    "rattler": _rattler,
    "conda-lock": _conda_lock,
}


def get_solver(name: str) -> CondaSolver:
    """The solver registered as ``name`` (a usage error naming the known ones otherwise)."""
    from builder.errors import UsageError

    factory = SOLVERS.get(name)
    if factory is None:
        raise UsageError(f"unknown solver {name!r}; known: {', '.join(sorted(SOLVERS))}")
    solver = factory()
    reason = solver.unavailable_reason()
    if reason is not None:
        raise UsageError(f"solver {name!r} cannot run here: {reason}",
                         hint="use the default in-process solver: --solver rattler")
    return solver


def target_virtual_packages(declared: Mapping[str, str], cuda: str) -> dict[str, str]:
    """The target's virtual packages: the resolution's, completed with linux defaults.

    ``__cuda`` comes from the resolution (or its CUDA version); a CPU-only target
    gets none.  Nothing is read from the locking machine.
    """
    out = dict(LINUX_VIRTUAL_DEFAULTS)
    out.update(declared)
    if "__cuda" not in declared and cuda != "cpu":
        out["__cuda"] = cuda
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class NvccChoice:
    """Which nvcc spec the lock used and, when it is a fallback, why."""

    spec: str | None
    warning: str | None = None


def choose_nvcc(solver: CondaSolver, req: CondaSolveRequest, preferred: str,
                fallbacks: tuple[str, ...]) -> NvccChoice:
    """``preferred`` when the channels have it, else the first fallback they have."""
    if solver.has_match(req, preferred):
        return NvccChoice(preferred)
    for candidate in fallbacks:
        if solver.has_match(req, candidate):
            return NvccChoice(candidate, warning=(
                f"toolchain: the channels have no record for {preferred!r}; using "
                f"{candidate!r} instead (same CUDA major; torch only warns on a minor "
                "mismatch)"))
    from builder.errors import ConflictError

    tried = ", ".join([preferred, *fallbacks])
    raise ConflictError(
        f"no nvcc for {req.context or 'this target'}: the channels ({req.plan.describe()}) "
        f"have no record for any of: {tried}",
        constraint="toolchain.nvcc",
        alternatives=["choose another CUDA version (--cuda) whose nvcc the channels carry",
                      "lock against the live channels or a fuller snapshot/mirror"])
