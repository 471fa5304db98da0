"""Assembling a :class:`Resolution` once the :class:`Resolver` has chosen torch and CUDA.

This part only turns decisions into fields (match specs, channels, pip pins, host compiler,
ops, virtual packages); it reads the resolver's public state and adds to its warnings and
explanations.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from builder.errors import ConflictError
from builder.matrix import query as q
from builder.matrix.arch import ArchResult
from builder.matrix.models import Matrix, TorchRelease, in_range
from builder.matrix.packages import merge_specs, order_channels, torch_packages
from builder.resolve.resolution import (
    BuildPiece,
    HostCompiler,
    OpPlan,
    PieceOption,
    Resolution,
    Toolchain,
)
from builder.spec.envspec import GitSource, LoadedSpec

if TYPE_CHECKING:
    from builder.resolve.resolver import Resolver

_GIT_URL = re.compile(r"git\+(\S+?)(?:@([0-9A-Za-z._/-]+))?(?:#|$)")


def build_resolution(r: Resolver, release: TorchRelease, provider: str, cuda: str,
                     python: str, arch: ArchResult, driver_min: str) -> Resolution:
    """A GPU resolution from the resolver's decisions."""
    from builder.resolve.resolver import toolchain_for

    m, spec = r.m, r.spec
    std = q.cxx_std(m, release.torch)
    host = _host_compiler(r, cuda, release.torch, provider)
    toolchain = toolchain_for(m, cuda, std.std)
    if toolchain is None:
        r.warnings.append(f"the matrix knows no conda nvcc for CUDA {cuda}: ops need a "
                          "system toolkit (CUDA_HOME)")
    else:
        row = m.nvcc_row(cuda)
        if row is not None and row.warn:
            r.warnings.append(f"nvcc {cuda} ({row.nvcc}): {row.warn}")
        r.explain.append(f"nvcc {cuda} from {toolchain.nvcc_spec}; fallbacks "
                         f"{', '.join(toolchain.nvcc_fallback_specs) or 'none'} (same major)")
    r.explain.append(f"C++ standard {std.std}: what torch {release.torch}'s cpp_extension "
                     f"passes ({std.source})")
    pkgs = torch_packages(m, release, provider, cuda, python, torchvision=spec.torchvision)
    pieces = build_pieces(r, cuda, host, toolchain)
    tool_specs = ([toolchain.nvcc_spec or "", *toolchain.nvcc_fallback_specs,
                   *toolchain.extra_conda] if toolchain else [])
    tool_specs += [o.spec for p in pieces for o in p.providers if o.kind == "conda"]
    base = spec.channels if spec.channels is not None else pkgs.channels
    channels, added = order_channels(base, pkgs.channels, tool_specs)
    if spec.channels is not None and added:
        r.warnings.append(f"added channel(s) {', '.join(added)} after the spec's channels: "
                          "needed by the torch build or the toolchain")
    r.explain.append("channels: " + ", ".join(channels) + " (label channels last: strict "
                     "channel priority would otherwise hide the nvidia channel's packages)")
    conda = merge_specs([f"python {python}.*"], pkgs.conda,
                        [host.spec] if host.spec else [], ["ninja"],
                        ["pip"] if (spec.pip or pkgs.pip) else [], spec.conda)
    return Resolution(
        name=spec.name, python=python, torch=release.torch,
        torchvision=release.torchvision if spec.torchvision else None,
        cuda=cuda, provider=spec.torch_from, channels=tuple(channels),
        arch_list=arch.arch_list, host_compiler=host, toolchain=toolchain, conda=conda,
        pip=_pip(r, pkgs.pip), pip_index_urls=pkgs.index_urls,
        ops=_ops(r.loaded, m, release.torch), driver_min=driver_min,
        build_toolchain=pieces,
        virtual_packages=_virtual(m, provider, release.torch, cuda),
        warnings=tuple(dict.fromkeys(r.warnings)), explain=tuple(r.explain),
        matrix_version=m.version)


def build_cpu_resolution(r: Resolver, release: TorchRelease, python: str) -> Resolution:
    """A CPU-only resolution (PyPI CPU wheels): no toolchain, no arch list."""
    m, spec = r.m, r.spec
    std = q.cxx_std(m, release.torch)
    pkgs = torch_packages(m, release, "pypi", q.CPU, python, torchvision=spec.torchvision)
    newest = max(m.toolchain.gxx_majors)
    # no nvcc bounds the compiler: C++-only ops build with the system g++
    host = HostCompiler(name="g++", max_major=newest, min_major=std.gcc_min, spec=None)
    r.explain.append(f"CPU-only: torch {release.torch}+cpu from {pkgs.index_urls[0]}; "
                     f"C++ standard {std.std}")
    base = spec.channels if spec.channels is not None else pkgs.channels
    conda = merge_specs([f"python {python}.*", "pip"], spec.conda)
    return Resolution(
        name=spec.name, python=python, torch=release.torch,
        torchvision=release.torchvision if spec.torchvision else None,
        cuda=q.CPU, provider=spec.torch_from, channels=tuple(base), arch_list=(),
        host_compiler=host, toolchain=None, conda=conda, pip=_pip(r, pkgs.pip),
        pip_index_urls=pkgs.index_urls, ops=_ops(r.loaded, m, release.torch),
        driver_min=None, virtual_packages=_virtual(m, "pypi", release.torch, None),
        warnings=tuple(dict.fromkeys(r.warnings)), explain=tuple(r.explain),
        matrix_version=m.version)


def build_pieces(r: Resolver, cuda: str, host: HostCompiler,
                 toolchain: Toolchain | None) -> tuple[BuildPiece, ...]:
    """Every build-time piece with its providers (matrix order), for the lock to choose from."""
    m = r.m
    row = m.buildtools_row(cuda)
    if row is None:
        r.warnings.append(f"the matrix has no build-toolchain row for CUDA {cuda}: the runtime "
                          "and math-library headers have no known provider (lock refuses "
                          "without --allow-incomplete)")
    nvcc_src = m.nvcc_row(cuda)
    out = []
    for info in m.buildtools.pieces:
        if info.piece == "compiler":
            opts = ([PieceOption(kind="conda", spec=host.spec, source=info.source)]
                    if host.spec else [])
        elif info.piece == "nvcc":
            specs = ([toolchain.nvcc_spec, *toolchain.nvcc_fallback_specs]
                     if toolchain is not None and toolchain.nvcc_spec else [])
            opts = [PieceOption(kind="conda", spec=s, source=nvcc_src.source if nvcc_src
                                else info.source) for s in specs]
        else:
            opts = [PieceOption(kind=p.kind, spec=p.spec, include=p.include, note=p.note,
                                source=p.source)
                    for p in (row.providers.get(info.piece, ()) if row else ())]
        out.append(BuildPiece(piece=info.piece, what=info.what, headers=info.headers,
                              providers=tuple(opts)))
    if row is not None:
        r.explain.append(f"build toolchain for CUDA {cuda}: "
                         + "; ".join(f"{p.piece} from "
                                     + (p.providers[0].spec if p.providers else "nothing known")
                                     for p in out))
    return tuple(out)


def _host_compiler(r: Resolver, cuda: str, torch: str, provider: str) -> HostCompiler:
    m = r.m
    row = m.cuda_release(cuda)
    assert row is not None  # checked by the resolver before assembling
    nvcc = m.nvcc_row(cuda)
    cf_nvcc = nvcc is not None and nvcc.nvcc.startswith("conda-forge::cuda-nvcc")
    bound, why = q.gxx_bounds(m, row, conda_forge_nvcc=cf_nvcc)
    std = q.cxx_std(m, torch)
    floor = max(std.gcc_min, row.torch_gcc[0] if row.torch_gcc else std.gcc_min)
    usable = [g for g in m.toolchain.gxx_majors if floor <= g <= bound]
    if not usable:
        raise ConflictError(
            f"no gxx_linux-64 fits: torch {torch} ({std.std}) needs gcc >= {floor} but "
            f"{why}", constraint=f"gcc >= {floor} and <= {bound}",
            alternatives=r.alternatives(cuda))
    major = max(usable)
    r.explain.append(f"gxx {major}: {why}; newest conda-forge gxx_linux-64 within it "
                     f"({m.toolchain.gxx_source})")
    return HostCompiler(name="gxx", max_major=bound, min_major=floor,
                        spec=f"gxx_linux-64 {major}.*")


def _pip(r: Resolver, torch_pins: tuple[str, ...]) -> tuple[str, ...]:
    spec = r.spec
    repos: list[tuple[str, str | None]] = [
        (src.git, src.rev) for src in spec.sources.values() if isinstance(src, GitSource)]
    for req in spec.pip:
        found = _GIT_URL.search(req)
        if found:
            repos.append((found.group(1), found.group(2)))
    pins: list[str] = []
    for rule in q.pins_for(r.m, repos):
        pins.extend(rule.pip)
        r.explain.append(f"pip pins {', '.join(rule.pip)} for {rule.repo}: {rule.why} "
                         f"({rule.source})")
    return tuple(dict.fromkeys([*torch_pins, *spec.pip, *pins]))


def _ops(loaded: LoadedSpec, m: Matrix, torch: str) -> tuple[OpPlan, ...]:
    out = []  # fixup names were checked against the registry when the spec loaded
    for i, op in enumerate(loaded.spec.ops):
        both = sorted(set(op.fixups) & set(op.skip_fixups))
        if both:
            raise loaded.error(("ops", i, "skip_fixups"), f"{', '.join(both)} is both in "
                               "fixups and skip_fixups; keep one")
        chosen = [f.name for f in q.fixups_for(m, torch, op.name, op.sanity)
                  if f.name not in op.skip_fixups]
        out.append(OpPlan(name=op.name, source=op.source, path=op.path, sanity=op.sanity,
                          fixups=tuple(dict.fromkeys([*chosen, *op.fixups]))))
    return tuple(out)


def _virtual(m: Matrix, provider: str, torch: str, cuda: str | None) -> dict[str, str]:
    glibc = next(g.glibc for g in m.torch.providers.glibc
                 if g.provider in (provider, "any") and in_range(torch, g.torch))
    # __linux: conda packages only need one to exist; RHEL 8's 4.18 is the oldest kernel
    # still common on shared GPU servers
    out = {"__glibc": glibc, "__linux": "4.18", "__unix": "0"}
    if cuda is not None:
        out["__cuda"] = cuda
    return out
