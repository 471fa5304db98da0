"""Header preflight: can every header the op's sources need be found, before any compile?

Each C++/CUDA source of the op is run through the host compiler's preprocessor in
dependency mode (``g++ -M -MG``) with the include paths the build will pass: the op's
own source dirs (:func:`op_include_dirs`), torch's own
(``cpp_extension.include_paths`` asked of the prefix's torch, with ``CUDA_HOME`` set as
the build sets it), the python headers, the ``CPATH`` dirs the build sets (the prefix's
``nvidia/*/include`` header wheels), and for ``.cu`` files nvcc's implicit ones (the
toolkit's include dirs) plus the ``cuda_runtime.h`` nvcc force-includes.  ``-MG`` lists a
header it cannot find instead of stopping, so one pass names every missing header of
every source; no nvcc is needed.  A CPU build (no toolkit: a CPU-only torch and no
``.cu`` source) preprocesses its C++ sources with the host compiler alone, with torch's
CPU include paths and without ``WITH_CUDA``.

A missing header the build toolchain supplies (``cusparse.h``, ``thrust/complex.h``,
``crt/host_config.h``; the patterns of ``builder/matrix/data/buildtools.yaml``) or torch
and python do (``ATen/``, ``pybind11/``, ``Python.h``) fails the preflight, naming the
piece and its providers.  Any other missing header (an op file the build may not compile,
e.g. a deploy example needing OpenCV) is a warning.  ``#error`` lines other than nvcc's
host compiler check (judged separately, by :func:`check_compiler`) fail it too.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import CheckFailed
from builder.models import Frozen as _Frozen
from builder.util.cmd import run

if TYPE_CHECKING:
    from builder.opbuild.preflight import Toolchain

SOURCE_SUFFIXES = (".cu", ".cpp", ".cc", ".cxx")
_SKIP_DIRS = {".git", "build", "dist", "__pycache__", ".eggs"}
TORCH_PATTERNS = ("torch/*", "ATen/*", "c10/*", "caffe2/*", "TH/*", "THC/*", "pybind11/*",
                  "Python.h", "pyconfig.h")
_ERROR = re.compile(r"^(?P<where>[^\s:]+:\d+(?::\d+)?): error: (?P<msg>.*)$", re.MULTILINE)

_PROBE = r"""
import json, sys, sysconfig
from torch.utils import cpp_extension as ce
cuda = sys.argv[1] == "cuda"
try:
    dirs = ce.include_paths(device_type="cuda" if cuda else "cpu")
except TypeError:
    dirs = ce.include_paths(cuda=cuda)
print(json.dumps({"torch": list(dirs), "python": sysconfig.get_paths()["include"]}))
"""


class HeaderPreflightError(CheckFailed):
    """A header the op build needs is not in the include paths it will pass."""


class MissingHeader(_Frozen):
    """One header no include dir has, who includes it, and who supplies it."""

    header: str
    sources: tuple[str, ...]  # the op sources (relative) whose preprocessing needed it
    piece: str | None  # "cusparse", "torch", ...; None: not a toolchain header
    provides: str  # what supplies it, for the message


class HeaderReport(_Frozen):
    """The outcome: fatal gaps, harmless ones, and what was checked with which dirs."""

    sources: tuple[str, ...]
    cpp_dirs: tuple[Path, ...]
    cu_dirs: tuple[Path, ...]
    missing: tuple[MissingHeader, ...]  # fail the build
    unattributed: tuple[MissingHeader, ...]  # warnings
    errors: tuple[str, ...]  # other preprocessor errors (fail the build)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.errors


class Piece(_Frozen):
    """A build piece as the header check sees it: header patterns and who provides it."""

    piece: str
    patterns: tuple[str, ...]
    providers: tuple[str, ...]


def op_sources(root: Path) -> list[Path]:
    """The op's C++/CUDA sources (no VCS, build output or test trees), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        out += [Path(dirpath) / f for f in filenames if f.endswith(SOURCE_SUFFIXES)]
    return sorted(out)


def parse_deps(text: str) -> list[str]:
    """The prerequisites of a ``-M`` make rule (the target and line continuations dropped)."""
    body = text.replace("\\\n", " ")
    _, _, deps = body.partition(": ")
    words = re.split(r"(?<!\\) +", deps.strip())
    return [w.replace("\\ ", " ") for w in words if w]


def classify(header: str, pieces: Sequence[Piece]) -> tuple[str | None, str]:
    """(piece, what provides it) for a missing header; (None, "") when no piece claims it."""
    for piece in pieces:
        if any(fnmatch.fnmatchcase(header, pat) for pat in piece.patterns):
            return piece.piece, ", ".join(piece.providers) or "no provider known to the matrix"
    if any(fnmatch.fnmatchcase(header, pat) for pat in TORCH_PATTERNS):
        return "torch", "the prefix's torch (its include/ tree) and the python headers"
    return None, ""


def _flags(lang: str, dirs: Sequence[Path], std: str, nvcc_version: str | None,
           cuda: bool = True) -> list[str]:
    flags = ["-M", "-MG", "-x", "c++", f"-std={std}", "-DTORCH_API_INCLUDE_EXTENSION_H"]
    if cuda:
        flags += ["-DWITH_CUDA", "-D__NV_NO_HOST_COMPILER_CHECK=1"]
    if lang == "cu":
        major, _, minor = (nvcc_version or "0.0").partition(".")
        flags += ["-D__CUDACC__", "-D__NVCC__", f"-D__CUDACC_VER_MAJOR__={major}",
                  f"-D__CUDACC_VER_MINOR__={minor.split('.')[0] or 0}",
                  "-include", "cuda_runtime.h"]
    return flags + [f"-I{d}" for d in dirs]


def op_include_dirs(root: Path, sources: Sequence[Path]) -> list[Path]:
    """The op's own header dirs: its root and every dir holding a source, up to the root.

    An op's ``setup.py`` passes its source dir (``include_dirs=[extensions_dir]``); this is
    a superset of what the family's setups pass, so an op-relative include is never taken
    for a missing toolchain header.
    """
    out = [root]
    for src in sources:
        d = src.parent
        while d != root and d.is_relative_to(root):
            out.append(d)
            d = d.parent
    return list(dict.fromkeys(out))


def _one(cxx: Path, src: Path, flags: list[str], own: list[str]) -> tuple[list[str], list[str]]:
    """(missing headers, error lines) of one source."""
    res = run([cxx, *flags, *own, src], check=False,
              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"})
    missing = [d for d in parse_deps(res.stdout) if not os.path.isabs(d)]
    errors = [f"{m['where']}: {m['msg']}" for m in _ERROR.finditer(res.stderr)]
    if res.returncode != 0 and not errors:
        errors = [res.stderr.strip().splitlines()[-1] if res.stderr.strip() else
                  f"preprocessing {src.name} failed (exit {res.returncode})"]
    return missing, errors


def check_headers(root: Path, cxx: Path, cpp_dirs: Sequence[Path], cu_dirs: Sequence[Path],
                  pieces: Sequence[Piece], *, std: str = "c++17",
                  nvcc_version: str | None = None, jobs: int = 2,
                  sources: Iterable[Path] | None = None, cuda: bool = True) -> HeaderReport:
    """Preprocess every source of the op at ``root`` (see the module docstring); ``cuda``
    False: a CPU build (no ``WITH_CUDA``)."""
    root = root.resolve()
    srcs = [s.resolve() for s in (sources if sources is not None else op_sources(root))]
    flags = {"cu": _flags("cu", cu_dirs, std, nvcc_version, cuda),
             "cpp": _flags("cpp", cpp_dirs, std, nvcc_version, cuda)}
    own = [f"-I{d}" for d in op_include_dirs(root, srcs)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda s: _one(cxx, s, flags["cu" if s.suffix == ".cu"
                                                              else "cpp"], own), srcs))
    found: dict[str, list[str]] = {}
    errors: list[str] = []
    for src, (missing, errs) in zip(srcs, results, strict=True):
        rel = src.relative_to(root).as_posix() if src.is_relative_to(root) else str(src)
        for header in missing:
            found.setdefault(header, []).append(rel)
        errors += errs
    fatal: list[MissingHeader] = []
    harmless: list[MissingHeader] = []
    for header, users in sorted(found.items()):
        piece, provides = classify(header, pieces)
        entry = MissingHeader(header=header, sources=tuple(users), piece=piece,
                              provides=provides)
        (fatal if piece else harmless).append(entry)
    return HeaderReport(sources=tuple(s.relative_to(root).as_posix() if s.is_relative_to(root)
                                      else str(s) for s in srcs),
                        cpp_dirs=tuple(cpp_dirs), cu_dirs=tuple(cu_dirs), missing=tuple(fatal),
                        unattributed=tuple(harmless), errors=tuple(dict.fromkeys(errors)))


def explain(report: HeaderReport, op: str) -> HeaderPreflightError:
    """The failure for a report that is not ok: every missing header and its provider."""
    lines = []
    for m in report.missing:
        users = ", ".join(m.sources[:3]) + (f" (+{len(m.sources) - 3})" if len(m.sources) > 3
                                            else "")
        lines.append(f"  - {m.header} [{m.piece}] needed by {users}; provided by {m.provides}")
    lines += [f"  - {e}" for e in report.errors]
    has_cu = any(src.endswith(".cu") for src in report.sources)
    dirs = "\n".join(f"      {d}" for d in (report.cu_dirs if has_cu else report.cpp_dirs))
    return HeaderPreflightError(
        f"header preflight for {op}: {len(report.missing)} missing header(s)"
        + (f", {len(report.errors)} preprocessor error(s)" if report.errors else "")
        + " in the include paths the build passes:\n" + "\n".join(lines)
        + f"\n    include paths ({'.cu' if has_cu else 'C++'}):\n{dirs}",
        hint="install the named package into the env (re-lock with the provider: `envbuild "
             "lock ... --fill-gaps pypi`, or against channels that have it), then build again")


def matrix_pieces(cuda: str | None) -> list[Piece]:
    """The build pieces of the matrix with this CUDA's providers (all pieces, any CUDA)."""
    from builder.matrix import load_matrix

    m = load_matrix()
    row = m.buildtools_row(cuda) if cuda else None
    nvcc = m.nvcc_row(cuda) if cuda else None
    out = []
    for info in m.buildtools.pieces:
        if info.piece == "nvcc":
            provs = [nvcc.nvcc, *nvcc.fallbacks] if nvcc else ["a CUDA toolkit's nvcc"]
        else:
            provs = [p.spec for p in (row.providers.get(info.piece, ()) if row else ())]
        out.append(Piece(piece=info.piece, patterns=info.headers, providers=tuple(provs)))
    return out


def torch_include_dirs(python: Path, cuda_home: Path | None) -> tuple[list[Path], Path]:
    """(torch's extension include dirs, the python include dir), asked of the prefix's torch;
    ``cuda_home`` None: a CPU build's (torch's CPU include paths)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    if cuda_home is not None:
        env["CUDA_HOME"] = str(cuda_home)
    res = run([python, "-c", _PROBE, "cuda" if cuda_home else "cpu"], env=env, check=False)
    if res.returncode != 0 or not res.stdout.strip():
        raise HeaderPreflightError(
            f"cannot ask torch in {python.parent.parent} for its include paths: "
            f"{(res.stderr.strip().splitlines() or ['no output'])[-1]}",
            hint="repair the torch install in the prefix before building ops")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return [Path(d) for d in data["torch"]], Path(data["python"])


_NVCC_INC = re.compile(r'^#\$ (?:SYSTEM_)?INCLUDES=(.*)$', re.MULTILINE)


def nvcc_include_dirs(nvcc: Path) -> list[Path]:
    """The include dirs nvcc adds by itself (``nvcc.profile``: ``INCLUDES``, ``SYSTEM_INCLUDES``;
    CUDA 13 keeps Thrust/CUB in ``include/cccl``), from ``nvcc -v --dryrun``."""
    import shlex

    res = run([nvcc, "-v", "--dryrun", "-x", "cu", "-c", "/dev/null", "-o", "/dev/null"],
              check=False, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    out: list[Path] = []
    for line in _NVCC_INC.findall(res.stderr + res.stdout):
        words = shlex.split(line)
        for i, word in enumerate(words):
            if word.startswith("-I") and len(word) > 2:
                out.append(Path(os.path.normpath(word[2:])))
            elif word in {"-I", "-isystem"} and i + 1 < len(words):
                out.append(Path(os.path.normpath(words[i + 1])))
    return list(dict.fromkeys(out))


def prefix_report(tc: Toolchain, source_dir: Path) -> HeaderReport:
    """:func:`check_headers` with exactly the include paths a build in ``tc`` passes."""
    from builder.opbuild.buildenv import cpath_dirs, max_jobs

    tk = tc.toolkit
    torch_dirs, python_inc = torch_include_dirs(tc.facts.python, tk.root if tk else None)
    cpp = list(dict.fromkeys([*torch_dirs, python_inc, *cpath_dirs(tc)]))
    cu = list(dict.fromkeys([*cpp, *(nvcc_include_dirs(tk.nvcc) if tk else ())]))
    cuda = ".".join((tc.facts.torch_cuda or "").split(".")[:2]) or None
    return check_headers(source_dir, tc.compiler.cxx, cpp, cu, matrix_pieces(cuda),
                         std=tc.cxx_std, nvcc_version=tk.version if tk else None,
                         jobs=max_jobs(), cuda=tk is not None)


def device_sources(root: Path) -> list[Path]:
    """The op's CUDA sources (``.cu``): none means the op can build for the CPU alone."""
    return [s for s in op_sources(root) if s.suffix == ".cu"]


def header_preflight(tc: Toolchain, source_dir: Path, op: str) -> list[str]:
    """Fail before any compile when a toolchain header is missing; warnings otherwise."""
    if not op_sources(source_dir):
        return []  # a pure-python op: nothing is compiled
    report = prefix_report(tc, source_dir)
    if not report.ok:
        raise explain(report, op)
    return [f"header {m.header} (included by {', '.join(m.sources[:2])}) is not in the build's "
            "include paths and no build piece provides it; the build fails if it compiles "
            "that file" for m in report.unattributed]
