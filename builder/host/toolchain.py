"""Compilers, glibc, CUDA_HOME and the nvcc on PATH (and what it really is).

nvcc on PATH is often not the compiler: a symlink into /usr/local/cuda-X.Y, or
a wrapper script (``exec /usr/local/cuda-13.0/bin/nvcc "$@"``).  Symlinks are
followed with ``realpath``; wrappers are seen through by asking nvcc itself:
``nvcc -v --dryrun -c probe.cu`` prints ``#$ TOP=<toolkit>/bin/..`` without
compiling anything (the input file need not exist).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from builder.errors import EnvbuildError
from builder.host.models import CompilerInfo, CudaHomeInfo, NvccInfo
from builder.util import cmd

_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V([\d.]+)")
_TOP = re.compile(r"^#\$ TOP=(.+)$", re.MULTILINE)
TIMEOUT = 60.0


def compiler(name: str, *, env: Mapping[str, str] | None = None) -> CompilerInfo:
    """Path and version of a gcc-compatible compiler (``-dumpfullversion -dumpversion``)."""
    source = env if env is not None else os.environ
    try:
        path = cmd.which(name, path=source.get("PATH"))
        done = cmd.run([path, "-dumpfullversion", "-dumpversion"], timeout=TIMEOUT,
                       path=source.get("PATH"))
    except EnvbuildError as exc:
        return CompilerInfo(name=name, path=None, version=None, problem=exc.message)
    return CompilerInfo(name=name, path=path, version=done.stdout.strip() or None)


def cxx_from_env(env: Mapping[str, str] | None = None) -> CompilerInfo | None:
    """The compiler ``$CXX`` names (conda's compiler activation sets it), if set."""
    source = env if env is not None else os.environ
    value = source.get("CXX")
    if not value:
        return None
    info = compiler(value.split()[0], env=source)
    return CompilerInfo(name=f"$CXX ({value})", path=info.path, version=info.version,
                        problem=info.problem)


def glibc_version() -> str | None:
    """``2.36`` from the C library this Python runs on; None off glibc."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    parts = text.split()
    return parts[1] if len(parts) == 2 and parts[0] == "glibc" else None


def nvcc_release(nvcc: str) -> tuple[str | None, str | None]:
    """(release, full version) from ``nvcc --version``: ("13.0", "13.0.88")."""
    try:
        done = cmd.run([nvcc, "--version"], timeout=TIMEOUT)
    except EnvbuildError:
        return None, None
    m = _NVCC_RELEASE.search(done.stdout)
    return (m.group(1), m.group(2)) if m else (None, None)


def cuda_home(env: Mapping[str, str] | None = None) -> CudaHomeInfo:
    """``CUDA_HOME`` (torch also reads ``CUDA_PATH``) and the nvcc release inside it."""
    source = env if env is not None else os.environ
    for var in ("CUDA_HOME", "CUDA_PATH"):
        value = source.get(var)
        if value:
            root = Path(value)
            nvcc = root / "bin" / "nvcc"
            release = nvcc_release(str(nvcc))[0] if os.access(nvcc, os.X_OK) else None
            return CudaHomeInfo(variable=var, value=value, exists=root.is_dir(),
                                nvcc_release=release)
    return CudaHomeInfo(variable=None, value=None)


def toolkit_root_from_dryrun(text: str) -> str | None:
    """The toolkit directory from ``nvcc -v --dryrun`` output (``#$ TOP=...``)."""
    m = _TOP.search(text)
    return os.path.normpath(m.group(1).strip()) if m else None


def nvcc_on_path(env: Mapping[str, str] | None = None) -> NvccInfo:
    """The nvcc PATH gives, followed through symlinks and wrapper scripts."""
    source = env if env is not None else os.environ
    try:
        path = cmd.which("nvcc", path=source.get("PATH"))
    except EnvbuildError as exc:
        return NvccInfo(found=False, problem=exc.message)
    via: list[str] = []
    resolved = os.path.realpath(path)
    if resolved != path:
        via.append(f"symlink -> {resolved}")
    root = _dryrun_root(path)
    real = resolved
    if root is not None:
        candidate = os.path.join(root, "bin", "nvcc")
        if os.path.exists(candidate) and os.path.realpath(candidate) != resolved:
            real = os.path.realpath(candidate)
            via.append(f"wrapper script -> {real}")
    release, version = nvcc_release(path)
    problem = None if release else f"{path} --version printed no CUDA release"
    return NvccInfo(found=True, path=path, real_path=real, toolkit_root=root,
                    version=version, release=release, via=tuple(via), problem=problem)


def _dryrun_root(nvcc: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="envbuild-nvcc-") as tmp:
        try:
            done = cmd.run([nvcc, "-v", "--dryrun", "-c", "probe.cu", "-o", "probe.o"],
                           cwd=tmp, check=False, timeout=TIMEOUT)
        except EnvbuildError:
            return None
    return toolkit_root_from_dryrun(done.stderr + done.stdout)
