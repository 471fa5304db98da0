"""Typed view of the matrix data files (``builder/matrix/data/*.yaml``).

The models mirror the files one to one; every row keeps its ``source`` (compat-facts'
S# references plus a trust level).  Torch ranges are PEP 440 specifier strings and are
evaluated with :func:`in_range`, so data never needs code to express "2.6 and later".
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@functools.lru_cache(maxsize=512)
def _specifier(text: str) -> Any:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(text)


@functools.lru_cache(maxsize=4096)
def in_range(version: str, spec: str) -> bool:
    """True when ``version`` satisfies the PEP 440 range ``spec`` (e.g. ``">=2.6"``)."""
    return bool(_specifier(spec).contains(version, prereleases=True))


def vkey(version: str) -> tuple[int, ...]:
    """Sort key of a dotted numeric version ("12.10" after "12.9")."""
    return tuple(int(p) for p in version.split(".") if p.isdigit())


# --- torch.yaml -------------------------------------------------------------------------


class CudaPackage(_Row):
    torch: str
    spec: str  # "pytorch-cuda {cuda}.*"
    channels: tuple[str, ...]


class ProviderInfo(_Row):
    package: str = "pytorch"
    last_torch: str | None = None
    build: str | None = None  # build-string glob template
    cuda_package: tuple[CudaPackage, ...] = ()
    index: str | None = None  # wheel index URL template
    source: str


class GlibcRow(_Row):
    provider: str  # "pypi" | "any"
    torch: str
    glibc: str
    source: str


class Providers(_Row):
    pytorch: ProviderInfo
    conda_forge: ProviderInfo = Field(alias="conda-forge")
    pypi: ProviderInfo
    glibc: tuple[GlibcRow, ...]


class TorchRelease(_Row):
    torch: str
    torchvision: str
    python: tuple[str, ...]
    pytorch: tuple[str, ...] = ()
    pytorch_python: tuple[str, ...] | None = None
    conda_forge: tuple[str, ...] = ()
    pypi_default: str | None = None
    wheel_index: tuple[str, ...] = ()
    traps: dict[str, str] = {}
    notes: tuple[str, ...] = ()
    source: str
    trust: str


class TorchData(_Row):
    schema_: int = Field(alias="schema")
    providers: Providers
    releases: tuple[TorchRelease, ...]


# --- cuda.yaml --------------------------------------------------------------------------


class FamilyFloor(_Row):
    major: int
    driver: str
    source: str


class CudaRelease(_Row):
    cuda: str
    driver_min: str
    gcc_max: int
    torch_gcc: tuple[int, int] | None
    cf_gcc_max: int | None = None
    sm: tuple[str, ...]
    source: str


class CudaData(_Row):
    schema_: int = Field(alias="schema")
    family_floor: tuple[FamilyFloor, ...]
    sets: dict[str, tuple[str, ...]] = {}
    releases: tuple[CudaRelease, ...]


# --- toolchain.yaml ---------------------------------------------------------------------


class NvccRow(_Row):
    cuda: str
    nvcc: str
    companions: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    why: str | None = None
    warn: str | None = None  # shown as a warning whenever this nvcc is chosen
    source: str


class CxxStdRow(_Row):
    torch: str
    std: str
    gcc_min: int
    source: str


class ArchAddRow(_Row):
    torch: str
    add: tuple[str, ...]
    source: str


class ToolchainData(_Row):
    schema_: int = Field(alias="schema")
    gxx_majors: tuple[int, ...]
    gxx_source: str
    nvcc: tuple[NvccRow, ...]
    cxx_std: tuple[CxxStdRow, ...]
    arch_base: tuple[str, ...]
    cpp_extension_arches: tuple[ArchAddRow, ...]


# --- buildtools.yaml -------------------------------------------------------------------


class PieceInfo(_Row):
    piece: str
    what: str
    headers: tuple[str, ...]  # fnmatch patterns; the first is the header torch needs
    source: str


class PieceProvider(_Row):
    kind: Literal["conda", "pypi"]
    spec: str  # conda match spec or an exact PEP 508 pin
    include: str | None = None  # pypi: header dir relative to site-packages
    note: str | None = None
    source: str


class BuildToolsRow(_Row):
    cuda: str
    providers: dict[str, tuple[PieceProvider, ...]]

    @model_validator(mode="before")
    @classmethod
    def _pieces_at_top(cls, data: Any) -> Any:
        """The file lists pieces beside ``cuda``; the model keeps them under ``providers``."""
        if isinstance(data, dict) and "providers" not in data:
            return {"cuda": data.get("cuda"),
                    "providers": {k: v for k, v in data.items() if k != "cuda"}}
        return data


class BuildToolsData(_Row):
    schema_: int = Field(alias="schema")
    pieces: tuple[PieceInfo, ...]
    rows: tuple[BuildToolsRow, ...]

    @model_validator(mode="after")
    def _known_pieces(self) -> BuildToolsData:
        known = {p.piece for p in self.pieces}
        for row in self.rows:
            unknown = set(row.providers) - known
            if unknown:
                raise ValueError(f"CUDA {row.cuda}: unknown piece(s) {sorted(unknown)}")
            for piece, provs in row.providers.items():
                if any(p.kind == "pypi" and not p.include for p in provs):
                    raise ValueError(f"CUDA {row.cuda} {piece}: a pypi provider needs include")
        return self


# --- builds.yaml, gpus.yaml, sources.yaml -----------------------------------------------


class BuildRow(_Row):
    provider: str
    torch: str
    cuda: tuple[str, ...]
    arch: str  # "3.7+PTX;5.0;...;8.6"
    source: str


class BuildsData(_Row):
    schema_: int = Field(alias="schema")
    builds: tuple[BuildRow, ...]


class GpuRow(_Row):
    model: str
    cc: str
    names: tuple[str, ...]


class GpusData(_Row):
    schema_: int = Field(alias="schema")
    gpus: tuple[GpuRow, ...]
    source: str


class FixupRule(_Row):
    name: str
    torch: str | None  # None: opt-in only
    ops: tuple[str, ...] = ()
    sanity: tuple[str, ...] = ()
    why: str
    source: str


class PinRule(_Row):
    repo: str
    revs: tuple[str, ...] | None
    pip: tuple[str, ...]
    why: str
    source: str


class SourcesData(_Row):
    schema_: int = Field(alias="schema")
    fixups: tuple[FixupRule, ...]
    pins: tuple[PinRule, ...]


class Matrix(_Row):
    """All matrix data plus its version (a digest of the data files)."""

    version: str
    torch: TorchData
    cuda: CudaData
    toolchain: ToolchainData
    buildtools: BuildToolsData
    builds: BuildsData
    gpus: GpusData
    sources: SourcesData

    def release(self, torch: str) -> TorchRelease | None:
        """The row of an exact torch version, or None."""
        return next((r for r in self.torch.releases if r.torch == torch), None)

    def cuda_release(self, cuda: str) -> CudaRelease | None:
        """The row of a CUDA major.minor, or None."""
        return next((c for c in self.cuda.releases if c.cuda == cuda), None)

    def buildtools_row(self, cuda: str) -> BuildToolsRow | None:
        """The providers of each build piece for this CUDA, or None."""
        return next((r for r in self.buildtools.rows if r.cuda == cuda), None)

    def nvcc_row(self, cuda: str) -> NvccRow | None:
        """Where nvcc for this CUDA comes from, or None."""
        return next((n for n in self.toolchain.nvcc if n.cuda == cuda), None)
