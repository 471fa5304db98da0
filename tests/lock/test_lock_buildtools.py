"""The op build toolchain at lock time: providers per piece, gaps refused or recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.lock import LockRequest, lock
from builder.lock.buildtools import IncompleteToolchain, choose_pieces
from builder.lock.lockfile import envbuild_metadata, read_lockfile
from builder.matrix import load_matrix
from builder.resolve.resolution import BuildPiece, PieceOption, Resolution
from builder.resolve.resolver import ResolveRequest, resolve
from builder.spec.envspec import load_spec
from tests.helpers import REPO, SNAPSHOT, run_cli, snapshot_missing_reason
from tests.helpers.lock import cu117_resolution, mini_spec

needs_snapshot = pytest.mark.skipif(snapshot_missing_reason() is not None,
                                    reason=snapshot_missing_reason() or "")

CUDART = BuildPiece(piece="cudart", what="CUDA runtime headers",
                    headers=("cuda_runtime_api.h",), providers=(
                        PieceOption(kind="conda", spec="nvidia::cuda-cudart-dev 11.7.99"),
                        PieceOption(kind="pypi", spec="nvidia-cuda-runtime-cu11==11.7.99",
                                    include="nvidia/cuda_runtime/include")))


def _pieces(cuda: str = "11.7") -> Resolution:
    loaded = load_spec(REPO / "envspecs" / "mask2former.yaml")
    return resolve(loaded, ResolveRequest(cuda=cuda))


def test_resolve_emits_every_piece_with_providers() -> None:
    res = _pieces()
    pieces = {p.piece: p for p in res.build_toolchain}
    assert list(pieces) == ["compiler", "nvcc", "cudart", "cusparse", "cublas", "cusolver",
                            "cccl"]
    assert pieces["compiler"].providers[0].spec == "gxx_linux-64 11.*"
    assert pieces["nvcc"].providers[0].spec == "nvidia/label/cuda-11.7.1::cuda-nvcc 11.7.*"
    assert pieces["cusolver"].headers[0] == "cusolverDn.h"
    assert [o.kind for o in pieces["cublas"].providers] == ["conda", "conda", "pypi"]
    assert pieces["cublas"].providers[-1].spec == "nvidia-cublas-cu11==11.10.3.66"
    assert all(o.source for p in res.build_toolchain for o in p.providers)


def test_resolve_json_keeps_the_contract_keys_and_adds_build_toolchain() -> None:
    out = run_cli("resolve", "envspecs/mask2former.yaml", "--cuda", "11.7", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("python", "torch", "torchvision", "cuda", "arch_list", "host_compiler",
                "conda", "pip", "warnings", "toolchain"):
        assert key in data
    cudart = next(p for p in data["build_toolchain"] if p["piece"] == "cudart")
    assert cudart["headers"][0] == "cuda_runtime_api.h"
    assert cudart["providers"][0]["spec"].startswith("nvidia/label/cuda-11.7.1::cuda-cudart-dev")


def test_choose_prefers_channels_and_fills_gaps_only_when_asked() -> None:
    have = choose_pieces((CUDART,), lambda spec: True, frozenset())
    assert have.conda == ["nvidia::cuda-cudart-dev 11.7.99"] and not have.missing
    assert have.locked[0].reason is None
    gap = choose_pieces((CUDART,), lambda spec: False, frozenset())
    assert not gap.locked and [m.piece.piece for m in gap.missing] == ["cudart"]
    assert any("--fill-gaps pypi: nvidia-cuda-runtime-cu11==11.7.99" in w
               for w in gap.missing[0].would_complete)
    assert any("live or mirrored channel" in w for w in gap.missing[0].would_complete)
    filled = choose_pieces((CUDART,), lambda spec: False, frozenset({"pypi"}))
    assert filled.pip == ["nvidia-cuda-runtime-cu11==11.7.99"] and not filled.missing
    locked = filled.locked[0]
    assert locked.kind == "pypi" and locked.include == "nvidia/cuda_runtime/include"
    assert locked.reason and "no record for 'nvidia::cuda-cudart-dev 11.7.99'" in locked.reason


def test_every_pypi_provider_is_where_the_builder_looks() -> None:
    """The builder adds site-packages/nvidia/*/include; every header wheel must land there."""
    m = load_matrix()
    includes = [p.include for r in m.buildtools.rows for ps in r.providers.values()
                for p in ps if p.kind == "pypi"]
    assert includes
    for inc in includes:
        parts = (inc or "").split("/")
        assert len(parts) == 3 and parts[0] == "nvidia" and parts[2] == "include", inc
    nvcc_rows = {n.cuda for n in m.toolchain.nvcc}
    assert nvcc_rows <= {r.cuda for r in m.buildtools.rows}  # no CUDA with nvcc but no headers


@needs_snapshot
def test_cu117_header_wheels_match_the_runtime_the_snapshot_pins() -> None:
    """The 11.7 PyPI providers carry the versions cuda-libraries 11.7.1 depends on."""
    repodata = json.loads((SNAPSHOT / "nvidia" / "linux-64" / "repodata.json").read_text())
    libs = next(r for r in repodata["packages"].values()
                if r["name"] == "cuda-libraries" and r["version"] == "11.7.1")
    floors = dict(d.split(" >=") for d in libs["depends"])
    row = load_matrix().buildtools_row("11.7")
    assert row is not None
    lib_of = {"cudart": "cuda-cudart", "cusparse": "libcusparse", "cublas": "libcublas",
              "cusolver": "libcusolver"}
    for piece, lib in lib_of.items():
        pypi = [p for p in row.providers[piece] if p.kind == "pypi"]
        assert len(pypi) == 1 and pypi[0].spec.endswith("==" + floors[lib]), piece


def _snapshot_req(tmp_path: Path, **kw: object) -> LockRequest:
    res = cu117_resolution().model_copy(update={"build_toolchain": _pieces().build_toolchain})
    return LockRequest(spec=mini_spec(), resolution=res, channel_snapshot=SNAPSHOT,
                       output=tmp_path / "out.conda-lock.yml", **kw)  # type: ignore[arg-type]


@needs_snapshot
def test_lock_refuses_an_incomplete_toolchain(tmp_path: Path) -> None:
    req = _snapshot_req(tmp_path)
    with pytest.raises(IncompleteToolchain) as info:
        lock(req)
    msg = info.value.message
    for piece, header in (("cudart", "cuda_runtime_api.h"), ("cusparse", "cusparse.h"),
                          ("cublas", "cublas_v2.h"), ("cusolver", "cusolverDn.h")):
        assert f"- {piece} (" in msg and header in msg
    assert "cccl" not in msg  # the snapshot has cuda-cccl 11.8.89 (matches nvcc 11.8)
    assert "--fill-gaps pypi: nvidia-cusolver-cu11==11.4.0.1" in msg
    assert info.value.exit_code == 1 and "--allow-incomplete" in (info.value.hint or "")
    assert not req.output.exists()


@needs_snapshot
def test_allow_incomplete_records_each_gap(tmp_path: Path) -> None:
    req = _snapshot_req(tmp_path, allow_incomplete=True)
    lock(req)
    meta = envbuild_metadata(read_lockfile(req.output))
    gaps = [p for p in meta.toolchain if p.kind is None]
    assert [p.piece for p in gaps] == ["cudart", "cusparse", "cublas", "cusolver"]
    assert all(p.reason and p.reason.startswith("missing") for p in gaps)
    warned = [w for w in meta.warnings if w.startswith("toolchain incomplete")]
    assert len(warned) == 4 and "cusparse.h" in warned[1]
    cccl = next(p for p in meta.toolchain if p.piece == "cccl")
    assert cccl.spec == "nvidia/label/cuda-11.8.0::cuda-cccl 11.8.89" and cccl.reason


@needs_snapshot
def test_cli_refusal_is_exit_1_without_a_traceback(tmp_path: Path) -> None:
    from tests.helpers.lock import MINI_SPEC

    out = run_cli("lock", str(MINI_SPEC), "--cuda", "11.7", "--channel-snapshot",
                  str(SNAPSHOT), "-o", str(tmp_path / "m.conda-lock.yml"))
    assert out.returncode == 1, out.stderr
    assert "build toolchain for m2f-mini, CUDA 11.7 is incomplete" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "m.conda-lock.yml").exists()
