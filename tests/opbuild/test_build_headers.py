"""The header preflight: every header an op needs is found before any compile, or named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.opbuild.headers import (
    Piece,
    check_headers,
    classify,
    explain,
    matrix_pieces,
    op_sources,
    parse_deps,
)
from tests.helpers import DATA
from tests.helpers.prefix import VENV, layered_venv

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="no host g++ on PATH")


def test_parse_deps_keeps_missing_headers_relative() -> None:
    text = "x.o: /src/x.cu /usr/include/stdio.h \\\n cusparse.h thrust/complex.h \\\n /a\\ b.h\n"
    assert parse_deps(text) == ["/src/x.cu", "/usr/include/stdio.h", "cusparse.h",
                                "thrust/complex.h", "/a b.h"]


def test_classify_names_the_piece_and_its_providers() -> None:
    pieces = matrix_pieces("11.7")
    assert classify("cusparse.h", pieces) == (
        "cusparse", "nvidia/label/cuda-11.7.1::libcusparse-dev 11.7.4.91, "
        "nvidia::libcusparse-dev 11.7.4.91, nvidia-cusparse-cu11==11.7.4.91")
    assert classify("cublas_v2.h", pieces)[0] == "cublas"
    assert classify("cusolverDn.h", pieces)[0] == "cusolver"
    assert classify("cuda_runtime_api.h", pieces)[0] == "cudart"
    assert classify("thrust/complex.h", pieces)[0] == "cccl"
    assert classify("crt/host_config.h", pieces)[0] == "nvcc"
    assert classify("ATen/ATen.h", pieces)[0] == "torch"
    assert classify("opencv2/opencv.hpp", pieces) == (None, "")


def test_op_sources_skip_build_output(tmp_path: Path) -> None:
    for rel in ("src/a.cu", "src/b.cpp", "build/temp/c.cpp", ".git/d.cc", "setup.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in op_sources(tmp_path)] == [
        "src/a.cu", "src/b.cpp"]


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A made-up torch include tree whose CUDA header needs the runtime and cuSPARSE."""
    torch_inc, cuda_inc = tmp_path / "torch" / "include", tmp_path / "cuda" / "include"
    (torch_inc / "ATen" / "cuda").mkdir(parents=True)
    (torch_inc / "ATen" / "cuda" / "CUDAContext.h").write_text(
        "#pragma once\n#include <cuda_runtime_api.h>\n#include <cusparse.h>\n")
    cuda_inc.mkdir(parents=True)
    (cuda_inc / "cuda_runtime.h").write_text("#pragma once\n#include <cuda_runtime_api.h>\n")
    (cuda_inc / "cuda_runtime_api.h").write_text("#pragma once\n")
    op = tmp_path / "op"
    (op / "src").mkdir(parents=True)
    (op / "src" / "k.cu").write_text("#include <ATen/cuda/CUDAContext.h>\n#include \"k.h\"\n")
    (op / "src" / "k.h").write_text("#pragma once\n")
    (op / "src" / "demo.cpp").write_text("#include <opencv2/opencv.hpp>\n")
    return op, torch_inc, cuda_inc


@needs_gxx
def test_missing_toolchain_header_is_named_with_its_provider(tmp_path: Path) -> None:
    assert GXX is not None
    op, torch_inc, cuda_inc = _tree(tmp_path)
    dirs = [torch_inc, cuda_inc]
    report = check_headers(op, Path(GXX), dirs, dirs, matrix_pieces("11.7"), std="c++14",
                           nvcc_version="11.8")
    assert not report.ok
    assert [(m.header, m.piece, m.sources) for m in report.missing] == [
        ("cusparse.h", "cusparse", ("src/k.cu",))]
    assert [m.header for m in report.unattributed] == ["opencv2/opencv.hpp"]
    err = explain(report, "msda")
    assert "cusparse.h [cusparse] needed by src/k.cu" in err.message
    assert "nvidia-cusparse-cu11==11.7.4.91" in err.message and err.exit_code == 1
    (cuda_inc / "cusparse.h").write_text("#pragma once\n")
    again = check_headers(op, Path(GXX), dirs, dirs, matrix_pieces("11.7"), std="c++14")
    assert again.ok and [m.header for m in again.unattributed] == ["opencv2/opencv.hpp"]


@needs_gxx
def test_cu_sources_get_nvccs_forced_runtime_header(tmp_path: Path) -> None:
    """nvcc force-includes cuda_runtime.h into every .cu file; without it, that is a gap."""
    assert GXX is not None
    op, torch_inc, cuda_inc = _tree(tmp_path)
    (cuda_inc / "cusparse.h").write_text("")
    report = check_headers(op, Path(GXX), [torch_inc], [torch_inc], matrix_pieces("11.7"))
    assert {m.header for m in report.missing} == {"cuda_runtime.h", "cuda_runtime_api.h",
                                                  "cusparse.h"}
    assert {m.piece for m in report.missing} == {"cudart", "cusparse"}


def _venv_toolchain_reason() -> str | None:
    if not (VENV / "bin" / "python").exists():
        return "no .venv"
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        return "no CUDA toolkit (nvcc) on this machine"
    return None


@pytest.mark.skipif(_venv_toolchain_reason() is not None, reason=_venv_toolchain_reason() or "")
@pytest.mark.parametrize("op", ["msda", "tiny"])
def test_fixture_ops_pass_with_the_real_toolchain_and_fail_without_a_piece(op: str) -> None:
    """The check a build runs, on the project's own ops with .venv's torch and real nvcc."""
    from builder.opbuild.headers import prefix_report
    from builder.opbuild.preflight import quick_toolchain

    tc = quick_toolchain(VENV, ("9.0",))
    report = prefix_report(tc, DATA / "ops" / op)
    assert report.ok, report
    assert {Path(s).suffix for s in report.sources} == {".cpp", ".cu"}
    assert any((d / "torch" / "extension.h").is_file() for d in report.cpp_dirs)
    if op != "msda":
        return
    # drop the dirs that supply cusparse.h: the same check now names it and its provider
    keep = [d for d in report.cu_dirs if not (d / "cusparse.h").is_file()]
    assert len(keep) < len(report.cu_dirs)
    assert tc.compiler is not None
    broken = check_headers(DATA / "ops" / op, tc.compiler.cxx, keep, keep,
                           matrix_pieces(tc.toolkit.version), std=tc.cxx_std,
                           nvcc_version=tc.toolkit.version)
    assert "cusparse.h" in {m.header for m in broken.missing}
    assert next(m for m in broken.missing if m.header == "cusparse.h").piece == "cusparse"


def test_pieces_cover_what_torch_needs() -> None:
    needed = ("cuda_runtime_api.h", "cusparse.h", "cublas_v2.h", "cusolverDn.h",
              "thrust/complex.h", "crt/host_config.h")
    pieces: list[Piece] = matrix_pieces("11.7")
    assert all(classify(h, pieces)[0] not in (None, "torch") for h in needed)


@pytest.mark.skipif(_venv_toolchain_reason() is not None, reason=_venv_toolchain_reason() or "")
def test_build_stops_before_the_compile_naming_the_header(tmp_path: Path) -> None:
    """build_op on an op needing a cuSOLVER header no include dir has: no nvcc ever runs."""
    from builder.opbuild.headers import HeaderPreflightError
    from builder.opbuild.ops import OpBuildRequest, build_op
    from builder.opbuild.store import Store

    op = tmp_path / "tiny"
    shutil.copytree(DATA / "ops" / "tiny", op)
    kernel = op / "src" / "tiny_kernel.cu"
    kernel.write_text("#include <cusolverSp_not_shipped.h>\n" + kernel.read_text())
    prefix = layered_venv(tmp_path / "prefix")
    store = Store(tmp_path / "store")
    with pytest.raises(HeaderPreflightError) as info:
        build_op(OpBuildRequest(name="tiny", source_dir=op, prefix=prefix, arch_list=("9.0",)),
                 store=store)
    msg = info.value.message
    assert "cusolverSp_not_shipped.h [cusolver] needed by src/tiny_kernel.cu" in msg
    assert "libcusolver-dev" in msg  # the matrix's provider for this CUDA
    assert not list((tmp_path / "store").rglob("*.whl"))
    assert not (prefix / ".envbuild" / "ops").exists()
