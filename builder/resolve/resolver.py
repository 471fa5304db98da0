"""spec + target -> a :class:`Resolution`, or a conflict that explains itself.

:func:`resolve` picks the newest torch within the spec's range that has a build for the
target CUDA and python on the spec's provider (``torch_from: conda``: the pytorch
channel up to its last release, conda-forge after; ``pypi``: the PyPI default wheel or
the PyTorch wheel index), then the toolchain, host compiler, arch list and pins from the
matrix.  Bad input raises :class:`SpecError`/:class:`UsageError` (exit 2); a combination
that cannot work raises :class:`ConflictError` (exit 1) naming the failed constraint and
the nearest combinations that do work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from builder.errors import ConflictError, EnvbuildError, UsageError
from builder.matrix import load_matrix
from builder.matrix import query as q
from builder.matrix.arch import ArchResult, Gpu, for_build, for_gpus
from builder.matrix.models import Matrix, TorchRelease, vkey
from builder.resolve.resolution import Resolution, Toolchain
from builder.spec.envspec import LoadedSpec

_XY = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class ResolveRequest:
    """What the user asked for on top of the spec (all optional)."""

    cuda: str | None = None  # "11.7" or "cpu"; None -> spec's cuda.default (or provider default)
    torch: str | None = None  # exact version override, must satisfy the spec range
    python: str | None = None  # override the spec's python
    gpus: tuple[str, ...] = ()  # GPU names as nvidia-smi prints them
    driver: str | None = None  # e.g. "525.60.13"; None = don't check


def resolve(loaded: LoadedSpec, request: ResolveRequest) -> Resolution:
    """Resolve ``loaded`` for ``request`` (see the module docstring)."""
    return Resolver(loaded, request, load_matrix()).run()


def target_cuda(loaded: LoadedSpec, requested: str | None = None) -> str:
    """The CUDA every command targets for ``loaded`` (``11.7``, or ``cpu``).

    ``requested`` (``--cuda``) wins; else the spec's ``cuda.default``; else the newest CUDA
    build of the newest torch in the spec's range for its python on its provider (the PyPI
    default wheel's CUDA for ``torch_from: pypi``).  ``resolve``, ``lock``, ``env`` and
    ``build`` all take it from here, so they name the same lockfile and prefix.
    """
    if requested is None and loaded.spec.cuda is not None:
        return loaded.spec.cuda.default  # the common case needs no matrix
    resolver = Resolver(loaded, ResolveRequest(cuda=requested), load_matrix())
    return resolver.target_cuda(resolver.python(), resolver.releases_in_range())


def _vkey_driver(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


class Resolver:
    """One resolution in progress: its inputs, and the warnings and explanations it collects
    (:mod:`builder.resolve.assemble` turns its decisions into a :class:`Resolution`)."""

    def __init__(self, loaded: LoadedSpec, request: ResolveRequest, m: Matrix,
                 *, nested: bool = False) -> None:
        self.loaded, self.spec, self.req, self.m = loaded, loaded.spec, request, m
        self.nested = nested  # alternatives are computed by nested resolvers; never recurse
        self.warnings: list[str] = []
        self.explain: list[str] = []

    # -- orchestration -----------------------------------------------------------------

    def run(self) -> Resolution:
        python = self.python()
        in_range = self.releases_in_range()
        cuda = self.target_cuda(python, in_range)
        gpus = self._gpus()
        release, provider = self._pick_torch(in_range, cuda, python)
        if cuda == q.CPU:
            return self._cpu(release, python, gpus)
        cuda_row = self.m.cuda_release(cuda)
        if cuda_row is None:
            raise UsageError(f"the matrix has no toolkit facts for CUDA {cuda}",
                             hint="run `envbuild matrix` for the known CUDA versions")
        arch = self._arch(gpus, cuda, cuda_row.sm, release.torch, provider, python)
        driver_min = self._driver(cuda, cuda_row.driver_min, python)
        return self._assemble(release, provider, cuda, python, arch, driver_min)

    # -- inputs ------------------------------------------------------------------------

    def python(self) -> str:
        python = self.req.python or self.spec.python
        if not _XY.match(python):
            raise UsageError(f"--python must look like '3.8', got {python!r}")
        return python

    def releases_in_range(self) -> list[TorchRelease]:
        rows = q.releases_in(self.m, str(self.spec.torch_specifier))
        if not rows:
            known = ", ".join(r.torch for r in self.m.torch.releases)
            raise self.loaded.error(("torch",), f"torch: no torch release in the matrix "
                                    f"matches {self.spec.torch!r}; known: {known}")
        if self.req.torch is None:
            return rows
        if self.m.release(self.req.torch) is None:
            known = ", ".join(r.torch for r in self.m.torch.releases)
            raise UsageError(f"unknown torch version {self.req.torch!r} (--torch); "
                             f"known: {known}")
        picked = [r for r in rows if r.torch == self.req.torch]
        if not picked:
            raise self.loaded.error(("torch",), f"torch {self.req.torch} (--torch) is outside "
                                    f"this spec's range {self.spec.torch!r}")
        return picked

    def target_cuda(self, python: str, rows: list[TorchRelease]) -> str:
        """--cuda, else cuda.default, else the provider's default, checked against the spec."""
        cuda = self.req.cuda or (self.spec.cuda.default if self.spec.cuda else None)
        if cuda is None:
            cuda = self._provider_default(rows, python)
        if cuda == q.CPU:
            if self.spec.torch_from != "pypi":
                raise self.loaded.error(("torch_from",), "a CPU-only resolution needs "
                                        "torch_from: pypi (the CPU wheels)")
            return cuda
        if not _XY.match(cuda):
            raise UsageError(f"--cuda must look like '11.7' (or 'cpu'), got {cuda!r}")
        if self.spec.cuda is not None and cuda not in self.spec.cuda.allowed_versions:
            key = ("cuda", "allowed") if self.spec.cuda.allowed else ("cuda", "default")
            allowed = ", ".join(self.spec.cuda.allowed_versions)
            raise self.loaded.error(key, f"CUDA {cuda} is not allowed by this spec "
                                    f"(allowed: {allowed})",
                                    hint=f"add {cuda!r} to cuda.allowed or pick one of {allowed}")
        if self.spec.cuda is None and self.m.cuda_release(cuda) is None:
            known = ", ".join(c.cuda for c in self.m.cuda.releases)
            raise UsageError(f"unknown CUDA version {cuda}; known: {known}")
        return cuda

    def _provider_default(self, rows: list[TorchRelease], python: str) -> str:
        for rel in rows:
            provider = q.provider_for(self.m, self.spec.torch_from, rel.torch)
            if python not in q.pythons(rel, provider):
                continue
            if provider == "pypi" and rel.pypi_default:
                return rel.pypi_default
            gpu = [c for c in q.cuda_builds(rel, provider) if c != q.CPU]
            if gpu:
                return max(gpu, key=vkey)
        raise self.loaded.error(("torch",), f"no torch in {self.spec.torch!r} has a build "
                                f"for python {python}; set cuda.default or --cuda")

    def _gpus(self) -> list[Gpu]:
        out = []
        for name in self.req.gpus:
            row = q.gpu_lookup(self.m, name)
            if row is None:
                raise UsageError(f"unknown GPU name {name!r}",
                                 hint=q.unknown_gpu_hint(self.m, name))
            out.append(Gpu(name, row.cc))
        return out

    # -- torch -------------------------------------------------------------------------

    def _pick_torch(self, rows: list[TorchRelease], cuda: str,
                    python: str) -> tuple[TorchRelease, str]:
        for rel in rows:
            provider = q.provider_for(self.m, self.spec.torch_from, rel.torch)
            if q.has_build(rel, provider, cuda, python):
                self.explain.append(self._why_torch(rel, provider, cuda, python))
                self.warnings.extend(rel.notes)
                return rel, provider
        raise self._no_torch(rows, cuda, python)

    def _why_torch(self, rel: TorchRelease, provider: str, cuda: str, python: str) -> str:
        where = {"pytorch": f"the pytorch conda channel (last release there: "
                            f"{self.m.torch.providers.pytorch.last_torch}, S8)",
                 "conda-forge": "conda-forge (the pytorch channel ended at "
                                f"{self.m.torch.providers.pytorch.last_torch})",
                 "pypi": "PyPI / the PyTorch wheel index"}[provider]
        how = "was requested (--torch)" if self.req.torch else \
            f"is the newest in {self.spec.torch!r}"
        build = "a CPU" if cuda == q.CPU else f"a CUDA {cuda}"
        return (f"torch {rel.torch} (torchvision {rel.torchvision}) {how} with {build} "
                f"build for python {python} on {where} [{rel.source}; trust {rel.trust}]")

    def _no_torch(self, rows: list[TorchRelease], cuda: str, python: str) -> ConflictError:
        traps = sorted({r.traps[cuda] for r in rows if cuda in r.traps})
        near = []
        for rel in rows[:6]:
            provider = q.provider_for(self.m, self.spec.torch_from, rel.torch)
            builds = [c for c in q.cuda_builds(rel, provider) if c != q.CPU]
            if python in q.pythons(rel, provider) and builds:
                near.append(f"torch {rel.torch} has CUDA {', '.join(builds)} on {provider}")
        outside = [r for r in q.releases_in(self.m, ">=0") if r not in rows and q.has_build(
            r, q.provider_for(self.m, self.spec.torch_from, r.torch), cuda, python)]
        if outside:
            near.append(f"outside the range: torch {outside[0].torch} has CUDA {cuda} for "
                        f"python {python}")
        msg = (f"no torch in {self.spec.torch!r} has a CUDA {cuda} build for python {python} "
               f"with torch_from: {self.spec.torch_from}")
        if traps:
            msg += ". Note: " + " ".join(traps)
        return ConflictError(msg, constraint=f"torch {self.spec.torch} + CUDA {cuda} + "
                             f"python {python}", alternatives=self.alternatives(cuda) + near)

    # -- arch, driver ------------------------------------------------------------------

    def _arch(self, gpus: list[Gpu], cuda: str, cuda_sm: tuple[str, ...], torch: str,
              provider: str, python: str) -> ArchResult:
        if not gpus:
            res = for_build(self.m, cuda=cuda, cuda_sm=cuda_sm, torch=torch, provider=provider)
        else:
            res = for_gpus(self.m, gpus, cuda=cuda, cuda_sm=cuda_sm, torch=torch,
                           provider=provider)
        if res.problems:
            first = res.problems[0]
            raise ConflictError("; ".join(p.message for p in res.problems),
                                constraint=first.constraint,
                                alternatives=self.alternatives(cuda))
        self.warnings.extend(res.warnings)
        self.explain.extend(res.explain)
        return res

    def _driver(self, cuda: str, native_min: str, python: str) -> str:
        floor = q.family_floor(self.m, cuda) or native_min
        self.explain.append(f"driver: CUDA {cuda} needs >= {native_min}, or >= {floor} under "
                            "minor-version compatibility (S9)")
        drv = self.req.driver
        if drv is None:
            return floor
        if not re.fullmatch(r"\d+(\.\d+){0,2}", drv.strip()):
            raise UsageError(f"--driver {drv!r} is not a driver version",
                             hint="give the version nvidia-smi reports, e.g. --driver 525.60.13 "
                                  "(`envbuild gpus` shows this machine's)")
        if _vkey_driver(drv) < _vkey_driver(floor):
            raise ConflictError(
                f"driver {drv} is too old for CUDA {cuda}: the minimum is {floor} "
                f"(minor-version compatibility; {native_min} for all of CUDA {cuda}'s features)",
                constraint=f"driver >= {floor} for CUDA {cuda}",
                alternatives=self.alternatives(cuda) + [f"upgrade the driver to >= {floor}"])
        if _vkey_driver(drv) < _vkey_driver(native_min):
            self.warnings.append(
                f"driver {drv} is below CUDA {cuda}'s own minimum {native_min}: it runs under "
                "minor-version compatibility, which does not cover JIT of PTX newer than the "
                "driver (S9)")
        return floor

    def alternatives(self, failed_cuda: str) -> list[str]:
        """CUDA versions (from the spec's allowed list, else the matrix) that do resolve."""
        if self.nested:
            return []
        cudas = (self.spec.cuda.allowed_versions if self.spec.cuda else
                 tuple(c.cuda for c in self.m.cuda.releases))
        out = []
        for cuda in sorted(cudas, key=vkey):
            if cuda == failed_cuda:
                continue
            try:
                res = Resolver(self.loaded, replace(self.req, cuda=cuda), self.m,
                                nested=True).run()
            except EnvbuildError:
                continue
            arch = f", arch {';'.join(res.arch_list)}" if self.req.gpus else ""
            out.append(f"--cuda {cuda}: torch {res.torch}, python {res.python}{arch}")
        return out

    # -- assembling --------------------------------------------------------------------

    def _assemble(self, release: TorchRelease, provider: str, cuda: str, python: str,
                  arch: ArchResult, driver_min: str) -> Resolution:
        from builder.resolve.assemble import build_resolution

        return build_resolution(self, release, provider, cuda, python, arch, driver_min)

    def _cpu(self, release: TorchRelease, python: str, gpus: list[Gpu]) -> Resolution:
        from builder.resolve.assemble import build_cpu_resolution

        if gpus:
            self.warnings.append("GPUs were given but this is a CPU-only resolution: "
                                 "no arch list, no CUDA toolchain")
        return build_cpu_resolution(self, release, python)


def toolchain_for(m: Matrix, cuda: str, cxx_std: str) -> Toolchain | None:
    """The conda nvcc (and same-major fallbacks) for ``cuda``; None when unknown."""
    row = m.nvcc_row(cuda)
    if row is None:
        return None
    notes = [f"nvcc {cuda}: {row.nvcc} ({row.source})"]
    if row.why:
        notes.append(row.why)
    notes.extend(f"fallback {spec}: same CUDA major {cuda.split('.')[0]}; torch raises only "
                 "on an nvcc major mismatch and warns on a minor one" for spec in row.fallbacks)
    return Toolchain(nvcc_version=cuda, nvcc_spec=row.nvcc, nvcc_source="conda",
                     cxx_std=cxx_std, nvcc_fallback_specs=row.fallbacks,
                     extra_conda=row.companions, notes=tuple(notes))


__all__ = ["ResolveRequest", "Resolver", "resolve", "target_cuda"]
