"""GPU compute capabilities -> a ``TORCH_CUDA_ARCH_LIST`` this CUDA and torch accept.

Rules (compat-facts §4):

* an arch must be a real target of this CUDA's nvcc (``ptxas --gpu-name``) *and* a value
  torch's ``cpp_extension`` accepts, or the build fails;
* a cubin for X.y runs on devices X.z with z >= y (same major), so a GPU newer than every
  accepted target of its major gets the highest accepted X.y, and the list's last entry
  carries ``+PTX`` for the driver to JIT what has no cubin;
* a GPU whose *major* no accepted target reaches cannot be served: that is a conflict
  naming the oldest CUDA that targets it;
* the torch build itself must ship kernels the GPU can run (same-major cubin, or PTX).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from builder.matrix.models import Matrix, vkey
from builder.matrix.query import build_row, cpp_extension_arches, min_cuda_for


@dataclass(frozen=True)
class Gpu:
    """A GPU the user named, resolved to its compute capability."""

    name: str
    cc: str


@dataclass(frozen=True)
class ArchProblem:
    """Why a GPU cannot be served by this CUDA / torch build."""

    gpu: Gpu
    constraint: str  # "sm_90 needs CUDA >= 11.8"
    message: str


@dataclass
class ArchResult:
    """The chosen list plus what to tell the user."""

    arch_list: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    explain: list[str] = field(default_factory=list)
    problems: list[ArchProblem] = field(default_factory=list)


def sm(cc: str) -> str:
    """``8.9`` -> ``sm_89``."""
    return "sm_" + cc.replace(".", "")


def _major(arch: str) -> int:
    return int(arch.split(".")[0])


def _plain(arch: str) -> str:
    return arch.removesuffix("+PTX")


def accepted(m: Matrix, cuda_sm: Sequence[str], torch: str) -> list[str]:
    """Arches both nvcc and cpp_extension accept, without arch-specific ``a`` variants."""
    ext = set(cpp_extension_arches(m, torch))
    return sorted((a for a in cuda_sm if a in ext and not a.endswith("a")), key=vkey)


def for_gpus(m: Matrix, gpus: Sequence[Gpu], *, cuda: str, cuda_sm: Sequence[str],
             torch: str, provider: str) -> ArchResult:
    """Arch list for the given GPUs (see module docstring)."""
    res = ArchResult()
    ok = accepted(m, cuda_sm, torch)
    chosen: set[str] = set()
    build = build_row(m, provider, torch, cuda)
    for gpu in gpus:
        pick = _pick(ok, gpu.cc)
        if pick is None:
            res.problems.append(_no_target(m, gpu, cuda, cuda_sm, torch))
            continue
        if build is not None and not _build_runs_on(build.arch.split(";"), gpu.cc):
            res.problems.append(ArchProblem(
                gpu, f"torch {torch} ({provider}, CUDA {cuda}) has no kernels for {sm(gpu.cc)}",
                f"{gpu.name} is {sm(gpu.cc)} but the torch {torch} build for CUDA {cuda} from "
                f"{provider} was compiled for {build.arch} only ({build.source})"))
            continue
        chosen.add(pick)
        if pick == gpu.cc:
            res.explain.append(f"{gpu.name}: compute capability {gpu.cc} -> {pick}")
        else:
            res.warnings.append(_downgrade_note(m, gpu, pick, cuda, cuda_sm, torch))
            res.explain.append(f"{gpu.name}: compute capability {gpu.cc} -> {pick} "
                               f"(highest target of its major this CUDA and torch accept)")
    ordered = sorted(chosen, key=vkey)
    if ordered:
        ordered[-1] += "+PTX"  # like torch's own auto-detection: PTX for newer GPUs
    res.arch_list = tuple(ordered)
    return res


def _pick(ok: Sequence[str], cc: str) -> str | None:
    if cc in ok:
        return cc
    same = [a for a in ok if _major(a) == _major(cc) and vkey(a) <= vkey(cc)]
    return max(same, key=vkey) if same else None


def _build_runs_on(arches: Sequence[str], cc: str) -> bool:
    for entry in arches:
        arch = _plain(entry)
        if _major(arch) == _major(cc) and vkey(arch) <= vkey(cc):
            return True
        if entry.endswith("+PTX") and vkey(arch) <= vkey(cc):
            return True
    return False


def _no_target(m: Matrix, gpu: Gpu, cuda: str, cuda_sm: Sequence[str],
               torch: str) -> ArchProblem:
    if gpu.cc not in cuda_sm and not any(_major(a) == _major(gpu.cc) and vkey(a) <= vkey(gpu.cc)
                                         for a in cuda_sm):
        first = min_cuda_for(m, gpu.cc)
        need = f"CUDA >= {first.cuda}" if first else "a newer CUDA than the matrix knows"
        return ArchProblem(gpu, f"{sm(gpu.cc)} needs {need}",
                           f"{gpu.name} is {sm(gpu.cc)}; CUDA {cuda}'s nvcc cannot target it "
                           f"or any {sm(gpu.cc)[:-1]}x, and PTX of an older major is not a "
                           f"supported way to run torch kernels: {sm(gpu.cc)} needs {need}")
    return ArchProblem(gpu, f"torch {torch}'s cpp_extension does not accept {gpu.cc}",
                       f"{gpu.name} is {sm(gpu.cc)}; torch {torch}'s cpp_extension accepts "
                       f"no arch of its major (TORCH_CUDA_ARCH_LIST would raise "
                       f"'Unknown CUDA arch'): a newer torch is needed")


def _downgrade_note(m: Matrix, gpu: Gpu, pick: str, cuda: str, cuda_sm: Sequence[str],
                    torch: str) -> str:
    why = []
    if gpu.cc not in cuda_sm:
        first = min_cuda_for(m, gpu.cc)
        why.append(f"CUDA {cuda}'s nvcc cannot target {sm(gpu.cc)}"
                   + (f" (needs CUDA >= {first.cuda})" if first else ""))
    if gpu.cc not in cpp_extension_arches(m, torch):
        why.append(f"torch {torch}'s cpp_extension does not accept {gpu.cc}")
    return (f"{gpu.name} is {sm(gpu.cc)}: " + "; ".join(why) + f". Building {pick}+PTX "
            f"instead: {sm(pick)} cubins run on {sm(gpu.cc)} (same major, binary "
            f"compatible) and the PTX lets the driver JIT-compile the rest. For native "
            f"{sm(gpu.cc)} code use a CUDA and torch that accept {gpu.cc}.")


def for_build(m: Matrix, *, cuda: str, cuda_sm: Sequence[str], torch: str,
              provider: str) -> ArchResult:
    """With no GPU given: the torch build's own list, kept to what nvcc/torch accept."""
    res = ArchResult()
    ok = set(accepted(m, cuda_sm, torch))
    build = build_row(m, provider, torch, cuda)
    if build is None:
        fallback = [a for a in sorted(ok, key=vkey) if vkey(a) >= (5, 0)]
        if fallback:
            fallback[-1] += "+PTX"
        res.arch_list = tuple(fallback)
        res.warnings.append(f"the matrix does not know the arch list of torch {torch} for "
                            f"CUDA {cuda} from {provider}; building for every arch >= 5.0 "
                            "that nvcc and torch accept (pass --gpu to narrow it)")
        return res
    kept = [a for a in build.arch.split(";") if _plain(a) in ok]
    dropped = [a for a in build.arch.split(";") if _plain(a) not in ok]
    res.arch_list = tuple(kept)
    res.explain.append(f"arch list: the {provider} torch {torch} CUDA {cuda} build's own "
                       f"list {build.arch} ({build.source}); no --gpu given")
    if dropped:
        res.warnings.append(f"dropped {', '.join(dropped)} from the build's arch list: "
                            f"not accepted by CUDA {cuda}'s nvcc or torch {torch}'s "
                            "cpp_extension")
    return res
