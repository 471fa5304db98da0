"""Pure checks the doctor runs: arch coverage, driver ↔ CUDA, toolchain agreement.

Each check turns facts into :class:`Finding` values (OK / WARN / FAIL with a
one-line fix).  Compatibility knowledge comes from a :class:`Knowledge`
object (the matrix adapter in :mod:`builder.doctor.matrix`), never from
constants here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from builder.host.models import GpuInfo, HostFacts

Level = Literal["OK", "WARN", "FAIL"]


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    level: Level
    topic: str
    message: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """``{"level", "topic", "message", "fix"}``."""
        return {"level": self.level, "topic": self.topic, "message": self.message,
                "fix": self.fix}


class Knowledge(Protocol):
    """The compatibility facts the doctor asks about (answered by the matrix)."""

    def gpu_compute_capability(self, name: str) -> str | None:
        """``8.9`` for "NVIDIA GeForce RTX 4090"; None when unknown."""
        ...

    def min_driver(self, cuda: str) -> str | None:
        """Minimum Linux driver to run CUDA ``X.Y`` natively."""
        ...

    def minor_compat_driver(self, cuda_major: int) -> str | None:
        """Minimum driver for minor-version compatibility across CUDA ``major``.x."""
        ...

    def max_gcc(self, nvcc: str) -> int | None:
        """Newest GCC major nvcc ``X.Y`` accepts."""
        ...

    def max_sm(self, nvcc: str) -> str | None:
        """Newest compute capability nvcc ``X.Y`` can compile for, e.g. ``8.6``."""
        ...


def vkey(version: str) -> tuple[int, ...]:
    """``525.78.01`` -> (525, 78, 1); non-digits end the key."""
    out: list[int] = []
    for part in version.split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


@dataclass(frozen=True)
class CudaSupport:
    """Which CUDA versions a driver can run."""

    driver: str
    native_max: str | None
    lines: tuple[str, ...]


def cuda_support(driver: str, native_max: str | None, know: Knowledge) -> CudaSupport:
    """Native range from the driver's own CUDA version, plus minor-version compatibility."""
    lines: list[str] = []
    if native_max:
        lines.append(f"CUDA <= {native_max}: natively (the driver reports CUDA {native_max})")
        major = int(native_max.split(".")[0])
        floor = know.minor_compat_driver(major)
        if floor and vkey(driver) >= vkey(floor):
            lines.append(
                f"CUDA {major}.x newer than {native_max}: through minor-version compatibility "
                f"(driver >= {floor}); caveat: code that JIT-compiles PTX newer than "
                f"{native_max} fails (use builds with SASS for your GPUs, not PTX-only)")
        nxt = know.minor_compat_driver(major + 1)
        if nxt and vkey(driver) < vkey(nxt):
            lines.append(f"CUDA {major + 1}.x: not runnable (needs driver >= {nxt})")
    else:
        lines.append("the driver did not report its CUDA version")
    return CudaSupport(driver=driver, native_max=native_max, lines=tuple(lines))


def can_run_cuda(driver: str, native_max: str | None, cuda: str, know: Knowledge
                 ) -> tuple[Level, str]:
    """Whether ``driver`` runs CUDA ``cuda``: OK natively, WARN via minor compat, else FAIL."""
    if native_max and vkey(cuda) <= vkey(native_max):
        return "OK", f"CUDA {cuda} runs natively on driver {driver} (CUDA {native_max})"
    major = vkey(cuda)[0]
    floor = know.minor_compat_driver(major)
    same_major = bool(native_max) and vkey(native_max or "")[0] == major
    if same_major and (floor is None or vkey(driver) >= vkey(floor)):
        since = f" (driver >= {floor})" if floor else ""
        return "WARN", (f"CUDA {cuda} runs on driver {driver} only through minor-version "
                        f"compatibility{since}; PTX newer than {native_max} cannot JIT")
    need = know.min_driver(cuda) or floor
    have = f"driver {driver}" + (f" runs CUDA <= {native_max}" if native_max else "")
    return "FAIL", (f"CUDA {cuda} needs a newer driver"
                    + (f" (>= {need})" if need else "") + f"; {have}")


def parse_arch(entry: str) -> tuple[int, int, bool] | None:
    """``8.6``, ``8.9+PTX``, ``sm_86``, ``compute_37`` -> (major, minor, is_ptx)."""
    text = entry.strip()
    ptx = text.upper().endswith("+PTX") or text.startswith("compute_")
    text = text.split("+")[0].removeprefix("sm_").removeprefix("compute_").rstrip("af")
    if "." in text:
        major, _, minor = text.partition(".")
    elif text.isdigit() and len(text) >= 2:
        major, minor = text[:-1], text[-1]
    else:
        return None
    if not (major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor), ptx


def arch_verdict(cc: str, arch_list: Iterable[str]) -> tuple[Level, str]:
    """Can code built for ``arch_list`` run on a GPU of compute capability ``cc``?"""
    parsed = parse_arch(cc)
    if parsed is None:
        return "WARN", f"unknown compute capability {cc!r}"
    major, minor, _ = parsed
    archs = [a for a in (parse_arch(x) for x in arch_list) if a is not None]
    if (major, minor) in {(a[0], a[1]) for a in archs}:
        return "OK", f"native sm_{major}{minor} code"
    same = sorted((a for a in archs if a[0] == major and a[1] < minor), reverse=True)
    if same:
        return "WARN", (f"no sm_{major}{minor} code; runs the sm_{same[0][0]}{same[0][1]} "
                        "code through same-major binary compatibility")
    ptx = sorted((a for a in archs if a[2] and (a[0], a[1]) <= (major, minor)), reverse=True)
    if ptx:
        return "WARN", (f"no sm_{major}{minor} code; the driver JIT-compiles compute_"
                        f"{ptx[0][0]}{ptx[0][1]} PTX at first launch (slow start)")
    return "FAIL", f"no kernel image for sm_{major}{minor} ('no kernel image is available')"


def gpu_cc(gpu: GpuInfo, know: Knowledge) -> str | None:
    """The GPU's compute capability: the driver's word, else the matrix by name."""
    return gpu.compute_capability or know.gpu_compute_capability(gpu.name)


def toolchain_findings(host: HostFacts, know: Knowledge) -> list[Finding]:
    """nvcc, CUDA_HOME and gcc: present, and agreeing with each other and the driver."""
    out: list[Finding] = []
    nvcc, home = host.nvcc, host.cuda_home
    if not nvcc.found:
        out.append(Finding("WARN", "nvcc", "no nvcc on PATH",
                           "activate the env (envbuild env installs nvcc) or add "
                           "$CUDA_HOME/bin to PATH"))
    else:
        what = f"{nvcc.path} (CUDA {nvcc.version or '?'})"
        if nvcc.is_wrapper:
            what = f"{nvcc.path} -> {nvcc.real_path} (CUDA {nvcc.version or '?'})"
        out.append(Finding("OK", "nvcc", f"nvcc on PATH: {what}"))
        out.extend(_nvcc_vs_driver(host, know))
    out.extend(_cuda_home_findings(host))
    out.extend(_gcc_findings(host, know))
    if home.value and nvcc.release and home.nvcc_release and home.nvcc_release != nvcc.release:
        out.append(Finding(
            "WARN", "CUDA_HOME",
            f"CUDA_HOME has CUDA {home.nvcc_release} but the nvcc on PATH is {nvcc.release}",
            f"make them agree: export PATH={home.value}/bin:$PATH"))
    return out


def _nvcc_vs_driver(host: HostFacts, know: Knowledge) -> list[Finding]:
    drv, nvcc = host.driver, host.nvcc
    if not (drv.driver_version and nvcc.release):
        return []
    level, why = can_run_cuda(drv.driver_version, drv.cuda_version, nvcc.release, know)
    if level == "OK":
        return []
    # WARN, not FAIL: only programs built with *this* nvcc are affected; envs bring their own
    return [Finding("WARN", "nvcc",
                    f"programs built by nvcc {nvcc.release} on PATH: {why}",
                    f"build with a CUDA <= {drv.cuda_version} toolkit (the env's nvcc: "
                    "envbuild env SPEC --cuda X.Y) or upgrade the driver")]


def _cuda_home_findings(host: HostFacts) -> list[Finding]:
    home, nvcc = host.cuda_home, host.nvcc
    if home.value is None:
        guess = nvcc.toolkit_root or "/usr/local/cuda-X.Y"
        return [Finding("WARN", "CUDA_HOME",
                        "CUDA_HOME is not set (Mask2Former's ops and detectron2 need it)",
                        f"activate the env (it sets CUDA_HOME) or export CUDA_HOME={guess}")]
    if not home.exists:
        return [Finding("FAIL", "CUDA_HOME", f"{home.variable}={home.value} does not exist",
                        "point it at a CUDA toolkit directory, or unset it")]
    if home.nvcc_release is None:
        return [Finding("WARN", "CUDA_HOME",
                        f"{home.variable}={home.value} has no working bin/nvcc",
                        "point it at a full toolkit (one with bin/nvcc)")]
    if nvcc.toolkit_root and home.value.rstrip("/") != nvcc.toolkit_root.rstrip("/"):
        import os

        if os.path.realpath(home.value) != os.path.realpath(nvcc.toolkit_root):
            return [Finding("WARN", "CUDA_HOME",
                            f"{home.variable}={home.value} (CUDA {home.nvcc_release}) but the "
                            f"nvcc on PATH lives in {nvcc.toolkit_root}",
                            f"export PATH={home.value}/bin:$PATH")]
    return [Finding("OK", "CUDA_HOME",
                    f"{home.variable}={home.value} (CUDA {home.nvcc_release})")]


def _gcc_findings(host: HostFacts, know: Knowledge) -> list[Finding]:
    out: list[Finding] = []
    gcc, gxx = host.gcc, host.gxx
    compilers = [c for c in (host.cxx_env, gxx) if c is not None and c.version]
    if not compilers:
        return [Finding("WARN", "g++", "no g++ found",
                        "install g++ or use the env's gxx (conda gxx_linux-64)")]
    cxx = compilers[0]
    out.append(Finding("OK", "g++", f"{cxx.name}: {cxx.path} {cxx.version}"))
    if gcc.major is not None and gxx.major is not None and gcc.major != gxx.major:
        out.append(Finding("WARN", "gcc", f"gcc {gcc.version} and g++ {gxx.version} differ",
                           "install matching gcc/g++ versions"))
    release = host.nvcc.release
    limit = know.max_gcc(release) if release else None
    if limit is not None and cxx.major is not None and cxx.major > limit:
        out.append(Finding(
            "WARN", "g++",
            f"{cxx.name} {cxx.version} is newer than nvcc {release} accepts (gcc <= {limit})",
            f"use gcc <= {limit} (conda: gxx_linux-64={limit}; it sets $CXX) "
            "or -allow-unsupported-compiler at your own risk"))
    return out
