"""Toolchain preflight: every check a compile depends on, run before any compile.

:func:`quick_toolchain` gathers what the store key needs (prefix python and
torch versions, the toolkit, the host compiler) and applies the cheap checks; it
never imports torch, so a cache hit stays well under a second.
:func:`full_preflight` adds the checks that need torch itself (which
``TORCH_CUDA_ARCH_LIST`` values this torch's ``cpp_extension`` accepts) and ninja.
Each failure is a :class:`PreflightError` whose hint says exactly what to change.

A CPU build: a CPU-only torch (``torch.version.cuda`` is None, as a ``cuda: cpu``
resolution installs) and an op with no device code (no ``.cu`` source) need no CUDA
toolkit.  Such a toolchain has ``toolkit=None`` and an empty arch list; only the host
compiler and the C++ standard are checked.  A CUDA torch keeps every CUDA check, whatever
the op's sources.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from builder.errors import CheckFailed
from builder.opbuild.toolchain import (
    Compiler,
    PrefixFacts,
    Toolkit,
    find_compiler,
    find_toolkits,
    prefix_facts,
)
from builder.util.cmd import run


class PreflightError(CheckFailed):
    """The toolchain cannot build this op; the hint names the fix."""


class Toolchain(BaseModel):
    """The checked toolchain for one prefix: everything the build env and the key need."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: Path
    facts: PrefixFacts
    toolkit: Toolkit | None  # None: a CPU build (CPU-only torch, no device code)
    compiler: Compiler
    cxx_std: str
    arch_list: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def cpu_only(self) -> bool:
        """True for a CPU build: no nvcc, no device code, no arch list."""
        return self.toolkit is None


def cxx_std_for(torch_version: str) -> str:
    """The ``-std`` torch's cpp_extension passes (compat-facts §6.4)."""
    major, minor = (int(x) for x in torch_version.split("+")[0].split(".")[:2])
    if (major, minor) >= (2, 12):
        return "c++20"
    return "c++17" if major >= 2 else "c++14"


_MIN_GCC_FOR_STD = {"c++20": 10, "c++17": 7, "c++14": 5}


def _xy(version: str) -> tuple[int, int]:
    parts = version.split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def choose_toolkit(facts: PrefixFacts, toolkits: list[Toolkit]) -> tuple[Toolkit, list[str]]:
    """The first toolkit whose CUDA major matches torch's; a minor mismatch only warns."""
    if facts.torch_version is None:
        raise PreflightError(
            f"torch is not installed in {facts.python.parent.parent}",
            hint=f"install torch into the prefix first ({facts.python} -m pip install torch==...)",
        )
    if not facts.torch_cuda:
        raise PreflightError(
            f"torch {facts.torch_version} in the prefix is a CPU-only build; CUDA ops need a "
            "CUDA build of torch", hint="install a CUDA build of torch (e.g. a +cu130 wheel); "
                                        "an op without .cu sources builds for the CPU as it is")
    if not toolkits:
        raise PreflightError(
            "no CUDA toolkit found (looked for $PREFIX/bin/nvcc, site-packages/nvidia/cu*/bin/nvcc,"
            " $CUDA_HOME, /usr/local/cuda*, nvcc on PATH)",
            hint=f"install nvcc {facts.torch_cuda} into the prefix (conda: cuda-nvcc "
                 f"cuda-version={facts.torch_cuda}; pip: nvidia-cuda-nvcc=={facts.torch_cuda}.*)"
                 " or set CUDA_HOME to a matching toolkit")
    want = _xy(facts.torch_cuda)
    same_major = [tk for tk in toolkits if _xy(tk.version)[0] == want[0]]
    if not same_major:
        listing = ", ".join(f"{tk.version} at {tk.root}" for tk in toolkits)
        raise PreflightError(
            f"CUDA major mismatch: torch {facts.torch_version} was built with CUDA "
            f"{facts.torch_cuda}, but the toolkits found are {listing}",
            hint=f"install nvcc {facts.torch_cuda} (conda: cuda-nvcc cuda-version="
                 f"{facts.torch_cuda}; pip: nvidia-cuda-nvcc=={facts.torch_cuda}.*) or point "
                 f"CUDA_HOME at a CUDA {want[0]}.x toolkit")
    exact = [tk for tk in same_major if _xy(tk.version) == want]
    chosen = (exact or same_major)[0]
    warnings = []
    if not exact:
        warnings.append(f"nvcc {chosen.version} ({chosen.root}) differs in the minor version from "
                        f"torch's CUDA {facts.torch_cuda}; torch only warns about this")
    return chosen, warnings


def check_compiler(compiler: Compiler | None, toolkit: Toolkit | None,
                   cxx_std: str) -> list[str]:
    """Host compiler vs nvcc's maximum gcc (a CUDA build) and the C++ standard torch passes."""
    if compiler is None:
        raise PreflightError("no C/C++ compiler found (gcc/g++ or the prefix's conda gxx)",
                             hint="install gxx into the env (conda: gxx_linux-64) or g++ "
                                  "system-wide")
    if toolkit is not None and toolkit.max_gcc is not None and compiler.major > toolkit.max_gcc:
        raise PreflightError(
            f"g++ {compiler.version} ({compiler.cxx}) is newer than nvcc {toolkit.version} accepts "
            f"(gcc <= {toolkit.max_gcc}, from {toolkit.root}/include/crt/host_config.h)",
            hint=f"install gxx_linux-64={toolkit.max_gcc}.* into the env (it is preferred over the "
                 "system g++), or use a newer nvcc")
    need = _MIN_GCC_FOR_STD.get(cxx_std, 0)
    if compiler.major < need:
        raise PreflightError(
            f"g++ {compiler.version} cannot compile {cxx_std}, which this torch passes to "
            "extensions",
            hint=f"install gxx_linux-64>={need}"
                 + (f" (<= {toolkit.max_gcc or 'nvcc max'})" if toolkit else "") + " into the env")
    warnings = []
    if toolkit is not None and toolkit.max_gcc is None:
        warnings.append(f"no crt/host_config.h under {toolkit.root}; gcc limit not checked")
    return warnings


def check_arch_against_nvcc(arch_list: tuple[str, ...], toolkit: Toolkit) -> None:
    """Every planned arch must be one this nvcc can generate code for."""
    if not arch_list:
        raise PreflightError("the arch list is empty; without a GPU torch cannot pick one",
                             hint='pass --arch "8.6" (the compute capability of your GPUs)')
    offered = {a.removeprefix("compute_") for a in toolkit.gpu_archs}
    for arch in arch_list:
        base = arch.removesuffix("+PTX").rstrip("afAF").replace(".", "")
        if offered and base not in offered:
            nice = ", ".join(f"{a[:-1]}.{a[-1]}" for a in sorted(offered, key=int))
            raise PreflightError(
                f"nvcc {toolkit.version} cannot build for arch {arch} (it offers {nice})",
                hint="drop that arch from --arch, or use a CUDA version that still supports it "
                     "(CUDA 13 removed sm_50-sm_72)")


def quick_toolchain(prefix: Path, arch_list: tuple[str, ...],
                    cxx_std: str | None = None, device_code: bool = True) -> Toolchain:
    """The toolchain for ``prefix`` with the checks that need no torch import.

    ``device_code`` False (the op has no ``.cu`` source) with a CPU-only torch gives a CPU
    build: no toolkit is looked for and the arch list is dropped (with a warning if one
    was asked for).
    """
    facts = prefix_facts(prefix)
    toolkit: Toolkit | None = None
    if facts.torch_version is not None and not facts.torch_cuda and not device_code:
        warnings = ([f"arch list {';'.join(arch_list)} ignored: a CPU build has no device "
                     "code"] if arch_list else [])
        arch_list = ()
    else:
        toolkit, warnings = choose_toolkit(facts, find_toolkits(prefix, facts.site_packages))
    std = cxx_std or cxx_std_for(facts.torch_version or "0.0")
    compiler = find_compiler(prefix)
    warnings += check_compiler(compiler, toolkit, std)
    if toolkit is not None:
        check_arch_against_nvcc(arch_list, toolkit)
    assert compiler is not None  # check_compiler raised otherwise
    return Toolchain(prefix=prefix, facts=facts, toolkit=toolkit, compiler=compiler, cxx_std=std,
                     arch_list=arch_list, warnings=tuple(warnings))


_ARCH_PROBE = r"""
import json, os, sys
from torch.utils import cpp_extension as ce
bad = {}
for arch in sys.argv[1:]:
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch
    try:
        ce._get_cuda_arch_flags()
    except Exception as exc:
        bad[arch] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(bad))
"""


def check_arch_against_torch(tc: Toolchain) -> None:
    """Ask the prefix's torch (``cpp_extension``) whether it accepts each planned arch."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    res = run([tc.facts.python, "-c", _ARCH_PROBE, *tc.arch_list], env=env, check=False)
    if res.returncode != 0:
        raise PreflightError(
            f"torch in {tc.prefix} does not import: {res.stderr.strip().splitlines()[-1:]}",
            hint="repair the torch install in the prefix before building ops")
    bad = json.loads(res.stdout.strip().splitlines()[-1])
    if bad:
        arch, why = next(iter(bad.items()))
        raise PreflightError(
            f"torch {tc.facts.torch_version} cpp_extension rejects arch {arch} ({why})",
            hint="choose arches this torch knows (compat-facts §4b), e.g. --arch \"8.6;9.0\"")


def check_ninja(tc: Toolchain) -> list[str]:
    """ninja makes torch compile sources in parallel; without it builds still work, slowly."""
    if (tc.prefix / "bin" / "ninja").exists() or shutil.which("ninja"):
        return []
    return ["ninja not found in the prefix or on PATH: torch falls back to a slow serial build "
            "(install ninja into the env)"]


def full_preflight(tc: Toolchain) -> Toolchain:
    """Run the torch-importing checks; returns the toolchain with any new warnings."""
    if not tc.cpu_only:
        check_arch_against_torch(tc)
    warnings = check_ninja(tc)
    return tc.model_copy(update={"warnings": tc.warnings + tuple(warnings)})
