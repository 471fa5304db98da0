"""Questions the resolver (and ``envbuild matrix``) asks of the matrix data.

Pure functions of a :class:`~builder.matrix.models.Matrix`; no I/O.  Provider names:
``pytorch`` (the official conda channel, up to its last release), ``conda-forge`` and
``pypi`` (the PyPI default wheel plus the download.pytorch.org indexes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from builder.matrix.models import (
    BuildRow,
    CudaRelease,
    CxxStdRow,
    FixupRule,
    GpuRow,
    Matrix,
    PinRule,
    ProviderInfo,
    TorchRelease,
    in_range,
    vkey,
)

CPU = "cpu"


def provider_for(m: Matrix, torch_from: str, torch: str) -> str:
    """Which provider serves ``torch`` for a spec's ``torch_from``."""
    if torch_from == "pypi":
        return "pypi"
    last = m.torch.providers.pytorch.last_torch or "0"
    return "pytorch" if vkey(torch) <= vkey(last) else "conda-forge"


def provider_info(m: Matrix, provider: str) -> ProviderInfo:
    """The provider's packaging facts (build-string globs, CUDA packages, index URL)."""
    table = {"pytorch": m.torch.providers.pytorch, "conda-forge": m.torch.providers.conda_forge,
             "pypi": m.torch.providers.pypi}
    return table[provider]


def cuda_builds(release: TorchRelease, provider: str) -> tuple[str, ...]:
    """CUDA versions (and ``cpu`` for PyPI) this release is built for by ``provider``."""
    if provider == "pytorch":
        return release.pytorch
    if provider == "conda-forge":
        return release.conda_forge
    out = list(release.wheel_index)
    if release.pypi_default and release.pypi_default not in out:
        out.append(release.pypi_default)
    return tuple(sorted(out, key=lambda c: (c == CPU, vkey(c) if c != CPU else ())))


def pythons(release: TorchRelease, provider: str) -> tuple[str, ...]:
    """Python versions with a build of this release from ``provider``."""
    if provider == "pytorch" and release.pytorch_python is not None:
        return release.pytorch_python
    return release.python


def has_build(release: TorchRelease, provider: str, cuda: str, python: str) -> bool:
    """True when ``provider`` ships this torch for ``cuda`` and ``python``."""
    return cuda in cuda_builds(release, provider) and python in pythons(release, provider)


def releases_in(m: Matrix, spec_range: str) -> list[TorchRelease]:
    """Releases within a PEP 440 range, newest first."""
    rows = [r for r in m.torch.releases if in_range(r.torch, spec_range)]
    return sorted(rows, key=lambda r: vkey(r.torch), reverse=True)


def build_row(m: Matrix, provider: str, torch: str, cuda: str) -> BuildRow | None:
    """The arch list an official build was compiled with (first matching row)."""
    for row in m.builds.builds:
        if row.provider == provider and cuda in row.cuda and in_range(torch, row.torch):
            return row
    return None


def cpp_extension_arches(m: Matrix, torch: str) -> tuple[str, ...]:
    """``TORCH_CUDA_ARCH_LIST`` values this torch's cpp_extension accepts."""
    extra: tuple[str, ...] = ()
    for row in m.toolchain.cpp_extension_arches:
        if in_range(torch, row.torch):
            extra = row.add
            break
    return tuple(m.toolchain.arch_base) + tuple(a for a in extra if a not in m.toolchain.arch_base)


def cxx_std(m: Matrix, torch: str) -> CxxStdRow:
    """The ``-std`` torch passes to extensions, with the gcc it needs."""
    for row in m.toolchain.cxx_std:
        if in_range(torch, row.torch):
            return row
    return m.toolchain.cxx_std[-1]


def min_cuda_for(m: Matrix, arch: str) -> CudaRelease | None:
    """The oldest CUDA whose nvcc targets ``arch`` (e.g. "9.0" -> 11.8)."""
    rows = sorted(m.cuda.releases, key=lambda c: vkey(c.cuda))
    return next((c for c in rows if arch in c.sm), None)


def family_floor(m: Matrix, cuda: str) -> str | None:
    """Driver floor of this CUDA's major under minor-version compatibility."""
    major = int(cuda.split(".")[0])
    return next((f.driver for f in m.cuda.family_floor if f.major == major), None)


def gxx_bounds(m: Matrix, cuda: CudaRelease, *, conda_forge_nvcc: bool) -> tuple[int, str]:
    """Newest gxx major nvcc (and torch, and conda-forge's nvcc) accept, and why."""
    bounds = [(cuda.gcc_max, f"nvcc {cuda.cuda} host_config.h rejects gcc > {cuda.gcc_max}")]
    if cuda.torch_gcc is not None:
        bounds.append((cuda.torch_gcc[1] - 1,
                       f"torch CUDA_GCC_VERSIONS[{cuda.cuda}] = {tuple(cuda.torch_gcc)}"))
    if conda_forge_nvcc and cuda.cf_gcc_max is not None:
        bounds.append((cuda.cf_gcc_max, f"conda-forge cuda-nvcc-impl {cuda.cuda} "
                                        f"needs gcc < {cuda.cf_gcc_max + 1}"))
    return min(bounds)


# --- GPUs -----------------------------------------------------------------------------

_NOISE = {"nvidia", "geforce", "tesla", "graphics", "gpu"}


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t and t not in _NOISE]


def gpu_lookup(m: Matrix, name: str) -> GpuRow | None:
    """The GPU row for a name as nvidia-smi prints it, or a common variant of it.

    Exact names win; otherwise the longest model whose tokens appear contiguously in the
    name's tokens ("rtx a6000" in "NVIDIA RTX A6000 48GB", never "a10" in "A100").
    """
    folded = name.strip().casefold()
    for row in m.gpus.gpus:
        if any(n.casefold() == folded for n in row.names):
            return row
    toks = _tokens(name)
    best: tuple[int, GpuRow] | None = None
    for row in m.gpus.gpus:
        model = row.model.split()
        if _contains(toks, model) and (best is None or len(model) > best[0]):
            best = (len(model), row)
    return best[1] if best else None


def _contains(tokens: list[str], seq: list[str]) -> bool:
    n = len(seq)
    return any(tokens[i:i + n] == seq for i in range(len(tokens) - n + 1))


def known_gpu_names(m: Matrix) -> list[str]:
    """Every exact GPU name the matrix knows, sorted."""
    return sorted(n for row in m.gpus.gpus for n in row.names)


def unknown_gpu_hint(m: Matrix, name: str) -> str:
    """What to say about a GPU name the matrix does not know: the closest known ones."""
    import difflib

    by_fold = {n.casefold(): n for row in m.gpus.gpus for n in (*row.names, row.model)}
    close = difflib.get_close_matches(name.strip().casefold(), list(by_fold), n=3, cutoff=0.6)
    lead = ("did you mean " + " or ".join(repr(by_fold[c]) for c in close) + "? ") if close else ""
    return (lead + "`envbuild matrix --gpu ''` lists every known GPU; pass the name exactly "
            "as `nvidia-smi --query-gpu=name --format=csv,noheader` prints it")


# --- sources --------------------------------------------------------------------------


def fixups_for(m: Matrix, torch: str, op_name: str, sanity: str | None) -> list[FixupRule]:
    """Fixups the matrix chooses for an op at this torch version."""
    return [f for f in m.sources.fixups
            if f.torch is not None and in_range(torch, f.torch)
            and (op_name in f.ops or (sanity is not None and sanity in f.sanity))]


def normalize_repo(url: str) -> str:
    """``https://github.com/Org/Repo.git`` -> ``github.com/org/repo``."""
    text = url.strip().lower()
    text = re.sub(r"^(git\+)?(https?|ssh|git)://", "", text)
    text = re.sub(r"^git@([^:]+):", r"\1/", text)
    text = text.split("@", 1)[0]  # a pip URL's "@<rev>"
    return text.removesuffix("/").removesuffix(".git")


def pins_for(m: Matrix, repos: Iterable[tuple[str, str | None]]) -> list[PinRule]:
    """Pin rules matching any (git URL, rev) of a spec's sources."""
    wanted = [(normalize_repo(url), (rev or "").lower()) for url, rev in repos]
    out: list[PinRule] = []
    for rule in m.sources.pins:
        for repo, rev in wanted:
            if repo != rule.repo:
                continue
            if rule.revs is None or any(r.startswith(rev) and rev for r in rule.revs):
                out.append(rule)
                break
    return out
