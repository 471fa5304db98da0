"""Toolchain discovery and preflight (against the real toolkit where this machine has one)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from builder.opbuild.buildenv import max_jobs
from builder.opbuild.preflight import (
    PreflightError,
    check_arch_against_nvcc,
    check_compiler,
    choose_toolkit,
    cxx_std_for,
)
from builder.opbuild.toolchain import (
    Compiler,
    PrefixFacts,
    Toolkit,
    probe_toolkit,
    real_toolkit_root,
)
from tests.helpers.smi import fake_gpus

REAL_NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(REAL_NVCC is None, reason="no nvcc on PATH on this machine")


def _toolkit(version: str = "13.0", max_gcc: int | None = 15) -> Toolkit:
    return Toolkit(root=Path(f"/opt/cuda-{version}"), nvcc=Path(f"/opt/cuda-{version}/bin/nvcc"),
                   version=version, full_version=f"{version}.88", origin="system",
                   include_dirs=(), lib_dirs=(), max_gcc=max_gcc,
                   gpu_archs=("compute_75", "compute_80", "compute_86", "compute_90"))


def _facts(torch_cuda: str | None = "13.0", torch: str | None = "2.14.1+cu130") -> PrefixFacts:
    return PrefixFacts(python=Path("/env/bin/python"), python_version="3.11.7",
                       soabi="cpython-311-x86_64-linux-gnu", site_packages=Path("/env/sp"),
                       torch_version=torch, torch_cuda=torch_cuda, torch_dir=None)


def _gcc(major: int) -> Compiler:
    return Compiler(cc=Path("/usr/bin/gcc"), cxx=Path("/usr/bin/g++"), major=major,
                    version=f"{major}.2.0", origin="system")


@needs_nvcc
def test_wrapper_nvcc_resolves_to_the_real_toolkit(tmp_path: Path) -> None:
    real_root = real_toolkit_root(Path(REAL_NVCC or "nvcc"))
    wrapper = tmp_path / "bin" / "nvcc"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {real_root}/bin/nvcc "$@"\n')
    wrapper.chmod(0o755)
    tk = probe_toolkit("system", wrapper)
    assert tk is not None
    assert tk.root == real_root != tmp_path  # not the wrapper's directory
    assert tk.nvcc == real_root / "bin" / "nvcc"
    assert tk.gpu_archs and tk.max_gcc is not None


def test_major_mismatch_is_an_error_before_compiling() -> None:
    with pytest.raises(PreflightError, match="CUDA major mismatch") as err:
        choose_toolkit(_facts("12.4", "2.5.1+cu124"), [_toolkit("13.0")])
    assert "nvcc 12.4" in (err.value.hint or "") and "CUDA_HOME" in (err.value.hint or "")


def test_minor_mismatch_warns_and_exact_match_is_preferred() -> None:
    tk, warnings = choose_toolkit(_facts("13.0"), [_toolkit("13.1")])
    assert tk.version == "13.1" and "minor" in warnings[0]
    tk, warnings = choose_toolkit(_facts("13.0"), [_toolkit("13.1"), _toolkit("13.0")])
    assert tk.version == "13.0" and warnings == []


def test_cpu_torch_and_no_toolkit_are_explained() -> None:
    with pytest.raises(PreflightError, match="CPU-only"):
        choose_toolkit(_facts(None, "2.14.1+cpu"), [_toolkit()])
    with pytest.raises(PreflightError, match="no CUDA toolkit found"):
        choose_toolkit(_facts(), [])


def test_compiler_newer_than_nvcc_allows() -> None:
    with pytest.raises(PreflightError, match="newer than nvcc 11.8 accepts") as err:
        check_compiler(_gcc(12), _toolkit("11.8", max_gcc=11), "c++17")
    assert "gxx_linux-64=11.*" in (err.value.hint or "")
    assert check_compiler(_gcc(12), _toolkit("13.0"), "c++20") == []


def test_cxx20_needs_gcc10() -> None:
    with pytest.raises(PreflightError, match="cannot compile c\\+\\+20"):
        check_compiler(_gcc(9), _toolkit("13.0"), "c++20")
    assert cxx_std_for("2.14.1+cu130") == "c++20"
    assert cxx_std_for("2.5.1") == "c++17"
    assert cxx_std_for("1.13.1") == "c++14"


def test_arch_this_nvcc_cannot_build() -> None:
    with pytest.raises(PreflightError, match="cannot build for arch 7.0"):
        check_arch_against_nvcc(("7.0", "8.6"), _toolkit())
    check_arch_against_nvcc(("8.6", "9.0+PTX"), _toolkit())
    with pytest.raises(PreflightError, match="arch list is empty"):
        check_arch_against_nvcc((), _toolkit())


def test_max_jobs_from_cores_and_memory() -> None:
    assert max_jobs(cpus=16, free_gib=7.0) == 3
    assert max_jobs(cpus=2, free_gib=64.0) == 2
    assert max_jobs(cpus=8, free_gib=0.5) == 1


@needs_nvcc
def test_quick_toolchain_on_this_venv() -> None:
    from builder.opbuild.preflight import quick_toolchain

    prefix = Path(os.environ.get("VIRTUAL_ENV") or Path(__file__).resolve().parents[2] / ".venv")
    tc = quick_toolchain(prefix, ("9.0",))
    if tc.facts.torch_cuda is None:
        pytest.skip("torch in .venv is not a CUDA build")
    assert tc.toolkit.version.split(".")[0] == tc.facts.torch_cuda.split(".")[0]
    assert not str(tc.toolkit.root).startswith("/usr/local/bin")


# --- the arch list follows this machine's GPUs -------------------------------------------

def test_build_resolves_for_the_seed_servers_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.opbuild.plan import resolve_for_host
    from builder.spec.envspec import load_spec
    from tests.helpers import ENVSPECS

    fake_gpus(monkeypatch, "server-4090-a6000")
    res = resolve_for_host(load_spec(ENVSPECS / "mask2former.yaml"), "11.7")
    # RTX A6000 (sm_86) and RTX 4090 (sm_89, which nvcc 11.7 cannot target): 8.6 + PTX,
    # not torch's eight-arch list
    assert res.arch_list == ("8.6+PTX",)
    assert any("sm_89" in w for w in res.warnings)


def test_build_on_an_h100_with_cuda_11_7_is_a_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.errors import ConflictError
    from builder.opbuild.plan import resolve_for_host
    from builder.spec.envspec import load_spec
    from tests.helpers import ENVSPECS

    fake_gpus(monkeypatch, "h100")
    with pytest.raises(ConflictError, match="sm_90"):
        resolve_for_host(load_spec(ENVSPECS / "mask2former.yaml"), "11.7")


def test_build_without_a_gpu_uses_the_torch_builds_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.opbuild.plan import resolve_for_host
    from builder.spec.envspec import load_spec
    from tests.helpers import ENVSPECS

    fake_gpus(monkeypatch, "no-driver")
    res = resolve_for_host(load_spec(ENVSPECS / "mask2former.yaml"), "11.7")
    assert res.arch_list == ("3.7+PTX", "5.0", "6.0", "6.1", "7.0", "7.5", "8.0", "8.6")
