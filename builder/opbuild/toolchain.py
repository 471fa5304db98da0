"""Find the CUDA toolkit, host compiler and torch facts that belong to one prefix.

Search order for the toolkit (first hit wins, every candidate is recorded):

1. the prefix's own nvcc: ``$PREFIX/bin/nvcc`` (conda ``cuda-nvcc``; headers and
   libraries may live under ``$PREFIX/targets/x86_64-linux``);
2. a PyPI ``nvidia-cuda-nvcc`` tree in the prefix (``site-packages/nvidia/cu13``);
3. system toolkits: ``$CUDA_HOME``/``$CUDA_PATH``, ``/usr/local/cuda*``, then the
   ``nvcc`` on PATH, resolved through ``nvcc -v --dryrun`` (its ``TOP=`` line
   names the real toolkit even when the PATH entry is a wrapper script).

Nothing here compiles; :mod:`builder.opbuild.preflight` judges what was found.
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path
from typing import Literal

from builder.errors import CheckFailed
from builder.models import Frozen as _Frozen
from builder.util.cmd import run

_RELEASE = re.compile(r"release (\d+)\.(\d+), V(\d+\.\d+\.\d+)")
_GNUC_MAX = re.compile(r"#if\s+__GNUC__\s*>\s*(\d+)")
_TOP = re.compile(r"^#\$ TOP=(.+)$", re.MULTILINE)



class Toolkit(_Frozen):
    """One CUDA toolkit: where it is, what nvcc says, where its headers and libraries are."""

    root: Path
    nvcc: Path
    version: str  # major.minor, e.g. "13.0"
    full_version: str  # e.g. "13.0.88"
    origin: Literal["prefix", "pypi", "system"]
    include_dirs: tuple[Path, ...]
    lib_dirs: tuple[Path, ...]
    max_gcc: int | None  # from host_config.h; None when the header was not found
    gpu_archs: tuple[str, ...]  # "compute_90", ... from nvcc --list-gpu-arch


class Compiler(_Frozen):
    """The host C/C++ compiler pair nvcc and setuptools will use."""

    cc: Path
    cxx: Path
    major: int
    version: str
    origin: Literal["prefix", "system"]


class PrefixFacts(_Frozen):
    """What the prefix's python says about itself, read without importing torch."""

    python: Path
    python_version: str
    soabi: str
    site_packages: Path
    torch_version: str | None
    torch_cuda: str | None  # "13.0"; None for a CPU build or no torch
    torch_dir: Path | None


_FACTS_SCRIPT = r"""
import importlib.util, json, re, sys, sysconfig
spec = importlib.util.find_spec("torch")
out = {"python_version": "%d.%d.%d" % sys.version_info[:3],
       "soabi": sysconfig.get_config_var("SOABI") or "",
       "site_packages": sysconfig.get_paths()["purelib"],
       "torch_version": None, "torch_cuda": None, "torch_dir": None}
if spec is not None and spec.submodule_search_locations:
    d = list(spec.submodule_search_locations)[0]
    out["torch_dir"] = d
    try:
        text = open(d + "/version.py", encoding="utf-8").read()
    except OSError:
        text = ""
    m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", text, re.M)
    c = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)", text, re.M)
    out["torch_version"] = m.group(1) if m else None
    out["torch_cuda"] = c.group(1) if c else None
print(json.dumps(out))
"""


def prefix_python(prefix: Path) -> Path:
    """``$PREFIX/bin/python``, or an error saying what a prefix must contain."""
    py = prefix / "bin" / "python"
    if not os.access(py, os.X_OK):
        raise CheckFailed(
            f"{prefix} has no bin/python",
            hint="--prefix must be a conda env or venv directory (one with bin/python)",
        )
    return py


def prefix_facts(prefix: Path) -> PrefixFacts:
    """Python and torch versions of the prefix (about 50 ms: torch is not imported)."""
    py = prefix_python(prefix)
    data = json.loads(run([py, "-c", _FACTS_SCRIPT], env=_plain_env()).stdout)
    return PrefixFacts(
        python=py,
        python_version=data["python_version"],
        soabi=data["soabi"],
        site_packages=Path(data["site_packages"]),
        torch_version=data["torch_version"],
        torch_cuda=data["torch_cuda"],
        torch_dir=Path(data["torch_dir"]) if data["torch_dir"] else None,
    )


def _plain_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def toolkit_candidates(prefix: Path, site_packages: Path | None) -> list[tuple[str, Path]]:
    """(origin, nvcc path) candidates in search order; later duplicates are dropped."""
    found: list[tuple[str, Path]] = [("prefix", prefix / "bin" / "nvcc")]
    if site_packages is not None:
        for tree in sorted(glob.glob(str(site_packages / "nvidia" / "cu1*")), reverse=True):
            found.append(("pypi", Path(tree) / "bin" / "nvcc"))
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            found.append(("system", Path(os.environ[var]) / "bin" / "nvcc"))
    found.append(("system", Path("/usr/local/cuda/bin/nvcc")))
    for tree in sorted(glob.glob("/usr/local/cuda-*"), reverse=True):
        found.append(("system", Path(tree) / "bin" / "nvcc"))
    import shutil

    on_path = shutil.which("nvcc")
    if on_path:
        found.append(("system", Path(on_path)))
    return found


def real_toolkit_root(nvcc: Path) -> Path:
    """The toolkit root nvcc itself uses (``TOP=`` of ``nvcc -v --dryrun``), wrappers resolved."""
    res = run([nvcc, "-v", "--dryrun", "-x", "cu", "-c", "/dev/null", "-o", "/dev/null"],
              check=False, env=_plain_env())
    m = _TOP.search(res.stderr + res.stdout)
    if m:
        return Path(os.path.realpath(m.group(1).strip()))
    return Path(os.path.realpath(nvcc.resolve().parent.parent))


def probe_toolkit(origin: str, nvcc: Path) -> Toolkit | None:
    """Describe the toolkit behind ``nvcc``, or None when it does not run."""
    if not os.access(nvcc, os.X_OK):
        return None
    res = run([nvcc, "--version"], check=False, env=_plain_env())
    m = _RELEASE.search(res.stdout)
    if res.returncode != 0 or not m:
        return None
    root = real_toolkit_root(nvcc)
    real_nvcc = root / "bin" / "nvcc"
    includes = [p for p in (root / "include", root / "targets" / "x86_64-linux" / "include")
                if p.is_dir()]
    libs = [p for p in (root / "lib64", root / "lib", root / "targets" / "x86_64-linux" / "lib")
            if p.is_dir()]
    archs = run([real_nvcc if real_nvcc.exists() else nvcc, "--list-gpu-arch"],
                check=False, env=_plain_env()).stdout.split()
    return Toolkit(
        root=root, nvcc=real_nvcc if real_nvcc.exists() else nvcc,
        version=f"{m.group(1)}.{m.group(2)}", full_version=m.group(3),
        origin=origin,  # type: ignore[arg-type]
        include_dirs=tuple(includes), lib_dirs=tuple(libs),
        max_gcc=_max_gcc(includes), gpu_archs=tuple(a for a in archs if a.startswith("compute_")),
    )


def _max_gcc(include_dirs: list[Path]) -> int | None:
    for inc in include_dirs:
        header = inc / "crt" / "host_config.h"
        if header.is_file():
            m = _GNUC_MAX.search(header.read_text(encoding="utf-8", errors="replace"))
            if m:
                return int(m.group(1))
    return None


def find_toolkits(prefix: Path, site_packages: Path | None) -> list[Toolkit]:
    """Every working toolkit, in search order, each real root listed once."""
    seen: set[Path] = set()
    out: list[Toolkit] = []
    for origin, nvcc in toolkit_candidates(prefix, site_packages):
        tk = probe_toolkit(origin, nvcc)
        if tk is None or tk.root in seen:
            continue
        seen.add(tk.root)
        out.append(tk)
    return out


def find_compiler(prefix: Path) -> Compiler | None:
    """The prefix's conda gcc/g++ when present, else the system gcc/g++ on PATH."""
    import shutil

    pairs: list[tuple[str, Path | None, Path | None]] = [
        ("prefix", prefix / "bin" / "x86_64-conda-linux-gnu-gcc",
         prefix / "bin" / "x86_64-conda-linux-gnu-g++"),
    ]
    sys_cc, sys_cxx = shutil.which("gcc"), shutil.which("g++")
    pairs.append(("system", Path(sys_cc) if sys_cc else None, Path(sys_cxx) if sys_cxx else None))
    for origin, cc, cxx in pairs:
        if cc is None or cxx is None or not (os.access(cc, os.X_OK) and os.access(cxx, os.X_OK)):
            continue
        version = run([cxx, "-dumpfullversion", "-dumpversion"], check=False,
                      env=_plain_env()).stdout.strip()
        if not version:
            continue
        return Compiler(cc=cc, cxx=cxx, major=int(version.split(".")[0]), version=version,
                        origin=origin)  # type: ignore[arg-type]
    return None


def extra_include_dirs(site_dirs: list[Path], toolkit: Toolkit) -> list[Path]:
    """Header dirs of the prefix's ``nvidia`` wheels that the toolkit lacks (cusparse.h, ...).

    torch's CUDA headers include cuBLAS, cuSPARSE and cuSOLVER headers; a
    minimal toolkit (or a PyPI nvcc) lacks them while torch's own wheels carry
    them under ``site-packages/nvidia/*/include``.
    """
    have = {p.name for inc in toolkit.include_dirs for p in inc.glob("*.h")}
    out: list[Path] = []
    found = {inc for sp in site_dirs for inc in glob.glob(str(sp / "nvidia" / "*" / "include"))}
    for inc in sorted(found):
        path = Path(inc)
        if path in toolkit.include_dirs:
            continue
        if {p.name for p in path.glob("*.h")} - have:
            out.append(path)
    return out


def find_cuobjdump(toolkit: Toolkit | None, *site_dirs: Path | None) -> Path | None:
    """cuobjdump from the toolkit, the PATH, or a wheel in one of ``site_dirs``.

    Callers pass the prefix's site-packages first, then the directory torch is imported
    from (a layered prefix sees it through a ``.pth``), then envbuild's own environment:
    triton, a torch dependency, ships a cuobjdump under ``triton/backends/nvidia/bin``.
    """
    import shutil

    candidates: list[Path] = []
    if toolkit is not None:
        candidates.append(toolkit.root / "bin" / "cuobjdump")
    on_path = shutil.which("cuobjdump")
    if on_path:
        candidates.append(Path(on_path))
    for site in dict.fromkeys(d for d in site_dirs if d is not None):
        candidates += [Path(p) for p in sorted(glob.glob(str(site / "nvidia" / "*" / "bin"
                                                              / "cuobjdump")))]
        candidates.append(site / "triton" / "backends" / "nvidia" / "bin" / "cuobjdump")
    return next((c for c in candidates if os.access(c, os.X_OK)), None)
