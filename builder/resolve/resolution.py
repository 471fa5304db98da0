"""The Resolution: what ``resolve`` decides and every later stage consumes.

``resolve --json`` prints :meth:`Resolution.to_json`; its keys are part of the
command-line contract (python, torch, torchvision, cuda, arch_list,
host_compiler, conda, pip, warnings; later build_toolchain) and are only ever added
to, never renamed.
"""

from __future__ import annotations

from typing import Any, Literal

from builder.models import Frozen as _Frozen
from builder.spec.places import cuda_tag


class HostCompiler(_Frozen):
    """The C++ compiler nvcc will use: conda ``gxx`` (or system ``g++``) no newer than max."""

    name: str  # "gxx" (conda-forge gxx_linux-64) or "g++" (system)
    max_major: int
    min_major: int = 6
    spec: str | None = None  # conda match spec, e.g. "gxx_linux-64 11.*"


class Toolchain(_Frozen):
    """How the ops get compiled for this resolution."""

    nvcc_version: str  # CUDA major.minor of the nvcc to use, e.g. "11.8"
    # conda match spec, e.g. "nvidia/label/cuda-11.8.0::cuda-nvcc"; None: not from conda
    nvcc_spec: str | None
    nvcc_source: Literal["conda", "pypi", "system"]
    cxx_std: str  # "c++14" | "c++17" | "c++20"
    # Same-major alternatives, most preferred first, for channels that lack nvcc_spec
    # (e.g. no cuda-nvcc 11.7 record: use nvidia/label/cuda-11.8.0::cuda-nvcc, torch only
    # warns on a minor mismatch).  The lock stage records which one it used and why.
    nvcc_fallback_specs: tuple[str, ...] = ()
    extra_conda: tuple[str, ...] = ()  # toolchain companions, e.g. cuda-cudart-dev
    notes: tuple[str, ...] = ()


class PieceOption(_Frozen):
    """One way to supply a build piece: a conda match spec or an exact-version PyPI wheel."""

    kind: Literal["conda", "pypi"]
    spec: str
    include: str | None = None  # pypi: the header dir, relative to site-packages
    note: str | None = None
    source: str = ""


class BuildPiece(_Frozen):
    """One piece of the op build toolchain (compiler, nvcc, runtime or math headers)."""

    piece: str  # "compiler" | "nvcc" | "cudart" | "cusparse" | "cublas" | "cusolver" | "cccl"
    what: str
    headers: tuple[str, ...] = ()  # fnmatch patterns; the first is the one torch needs
    providers: tuple[PieceOption, ...] = ()  # most preferred first; empty: none known


class OpPlan(_Frozen):
    """One op to build, with the fixups the matrix chose for this torch."""

    name: str
    source: str
    path: str
    sanity: str | None
    fixups: tuple[str, ...]


class Resolution(_Frozen):
    """Exact pins, toolchain and arch list for one spec on one target CUDA."""

    name: str
    python: str  # major.minor
    torch: str  # exact version, e.g. "1.13.1"
    torchvision: str | None  # None when the spec says torchvision: false
    cuda: str  # major.minor, or "cpu" for a CPU-only torch
    provider: Literal["conda", "pypi"]
    channels: tuple[str, ...]
    arch_list: tuple[str, ...]  # e.g. ("8.6", "8.9+PTX")
    host_compiler: HostCompiler
    toolchain: Toolchain | None  # None for a CPU-only resolution
    conda: tuple[str, ...]  # conda match specs, in solve order
    pip: tuple[str, ...]  # PEP 508 requirements
    pip_index_urls: tuple[str, ...] = ()  # extra index (e.g. the PyTorch wheel index)
    ops: tuple[OpPlan, ...] = ()
    # every build-time piece and its providers; the lock picks one provider per piece
    build_toolchain: tuple[BuildPiece, ...] = ()
    driver_min: str | None = None  # minimum driver for this CUDA (with minor-version compat)
    virtual_packages: dict[str, str] = {}  # target virtual packages: __cuda, __glibc, ...
    warnings: tuple[str, ...] = ()
    explain: tuple[str, ...] = ()  # why each choice was made, one line each
    matrix_version: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the CLI contract (lists, not tuples)."""
        data = self.model_dump(mode="json")
        return data

    @property
    def cuda_tag(self) -> str:
        """``cu117`` for CUDA 11.7, ``cpu`` for a CPU-only resolution."""
        return cuda_tag(self.cuda)
