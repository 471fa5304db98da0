"""The explicit environment an op build runs in.

Nothing leaks in from the caller's shell except PATH's tail, HOME and the
locale: CUDA_HOME, TORCH_CUDA_ARCH_LIST, FORCE_CUDA, MAX_JOBS, CC/CXX, CPATH and
LIBRARY_PATH are all set from the checked toolchain.  The compilers go through
ccache (:mod:`builder.opbuild.ccache`), and nvcc compiles the arch passes of a
multi-arch build in parallel (``--threads``, through ``NVCC_APPEND_FLAGS``).  A CPU build
(no toolkit) gets none of the CUDA variables: torch's ``CppExtension`` needs only the host
compiler.
"""

from __future__ import annotations

import os
from pathlib import Path

from builder.opbuild import ccache
from builder.opbuild.preflight import Toolchain
from builder.opbuild.toolchain import extra_include_dirs

# nvcc on torch's headers peaks at roughly 1.5-2 GiB per job; keep a margin.
GIB_PER_JOB = 2.0


def max_jobs(cpus: int | None = None, free_gib: float | None = None) -> int:
    """Parallel compile jobs from cores and available memory (at least 1)."""
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) or 1)
    free = free_gib if free_gib is not None else _available_gib()
    by_mem = int(free // GIB_PER_JOB) if free is not None else cpus
    return max(1, min(cpus, by_mem))


def _available_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        return None
    return None


def cudart_shim(tc: Toolchain, work: Path) -> Path | None:
    """A lib dir with ``libcudart.so`` when the toolkit has only ``libcudart.so.N`` (PyPI)."""
    if tc.toolkit is None:
        return None
    libs = tc.toolkit.lib_dirs
    if any((d / "libcudart.so").exists() for d in libs):
        return None
    for d in libs:
        versioned = sorted(d.glob("libcudart.so.*"))
        if versioned:
            shim = work / "cudart-shim"
            shim.mkdir(parents=True, exist_ok=True)
            link = shim / "libcudart.so"
            if not link.exists():
                link.symlink_to(versioned[0])
            return shim
    return None


def _site_dirs(tc: Toolchain) -> list[Path]:
    """The prefix's site-packages and the one torch lives in (they differ for layered envs)."""
    dirs = [tc.facts.site_packages]
    if tc.facts.torch_dir is not None and tc.facts.torch_dir.parent not in dirs:
        dirs.append(tc.facts.torch_dir.parent)
    return dirs


def cpath_dirs(tc: Toolchain) -> list[Path]:
    """The header dirs the build adds through ``CPATH`` (the prefix's nvidia header wheels;
    none for a CPU build)."""
    return extra_include_dirs(_site_dirs(tc), tc.toolkit) if tc.toolkit else []


def build_env(tc: Toolchain, work: Path, jobs: int | None = None) -> dict[str, str]:
    """The complete environment for ``pip wheel`` of one op."""
    tk = tc.toolkit
    path = ([str(tk.root / "bin")] if tk else []) + [str(tc.prefix / "bin"),
                                                      os.environ.get("PATH", "/usr/bin:/bin")]
    includes = [str(p) for p in cpath_dirs(tc)]
    shim = cudart_shim(tc, work)
    libs = ([str(shim)] if shim else []) + [str(p) for p in (tk.lib_dirs if tk else ())]
    env = {
        "PATH": os.pathsep.join(path),
        "HOME": os.environ.get("HOME", str(work)),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": str(work),
        "MAX_JOBS": str(jobs or max_jobs()),
        "CC": str(tc.compiler.cc),
        "CXX": str(tc.compiler.cxx),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PYTHONNOUSERSITE": "1",
    }
    if tk is not None:
        env.update({"CUDA_HOME": str(tk.root), "CUDA_PATH": str(tk.root),
                    "TORCH_CUDA_ARCH_LIST": ";".join(tc.arch_list), "FORCE_CUDA": "1"})
    if includes:
        env["CPATH"] = os.pathsep.join(includes)
    if libs:
        env["LIBRARY_PATH"] = os.pathsep.join(libs)
    threads = nvcc_threads(tc)
    if threads > 1:
        env["NVCC_APPEND_FLAGS"] = f"--threads {threads}"
    return ccache.apply(env, work, tk.nvcc if tk else None)


def nvcc_threads(tc: Toolchain, cpus: int | None = None) -> int:
    """Parallel arch passes per nvcc call: one per arch, at most the cores (1: off).

    ``NVCC_APPEND_FLAGS`` is read by nvcc >= 11.5 itself (``--threads`` exists from
    11.2); the passes' output is the same, only the order of the work changes.
    """
    if tc.toolkit is None:
        return 1
    try:
        major, minor = (int(p) for p in tc.toolkit.version.split(".")[:2])
    except ValueError:
        return 1
    if (major, minor) < (11, 5):
        return 1
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) or 1)
    passes = sum(2 if a.endswith("+PTX") else 1 for a in tc.arch_list)
    return max(1, min(passes, cpus))
