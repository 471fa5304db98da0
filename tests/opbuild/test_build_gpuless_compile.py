"""Real compiles of the family-shaped fixtures on a GPU-less host (one build per tree).

``gated`` refuses to build unless torch sees a GPU (the Deformable-DETR ops shape) and
passes ``x.type()`` to AT_DISPATCH; ``wholepkg`` is a whole package whose
``wholepkg/csrc/**`` sources are found by glob and built as ``wholepkg._C`` (the
GroundingDINO / detectron2 shape).  Both must build unmodified: the visible-gpu-shim for
the gate, the automatic dispatch-scalar-type fixup for the dispatch, CUDA_HOME unset in the
caller's environment.  The prefix is this module's own venv layered on .venv.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.opbuild import ops
from builder.opbuild.gpugate import MECHANISM
from builder.opbuild.ops import BuildFailed, OpBuildRequest, OpBuildResult, build_op
from builder.opbuild.reproducible import RECIPE
from builder.opbuild.store import Store
from builder.opbuild.toolchain import find_cuobjdump, prefix_facts
from tests.helpers import DATA
from tests.helpers.prefix import VENV, layered_venv

pytestmark = pytest.mark.compile
ARCH = ("8.0", "9.0+PTX")
TREES = {"gated": "envbuild_gated", "wholepkg": "wholepkg._C"}


@pytest.fixture(scope="module")
def gpuless_prefix(compile_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own prefix layered on .venv (its ops are installed there)."""
    return layered_venv(tmp_path_factory.mktemp("gpuless-prefix"))


@pytest.fixture(scope="module")
def no_cuda_home() -> Iterator[None]:
    """The caller's environment names no toolkit (envbuild must find and set it itself)."""
    saved = {k: os.environ.pop(k) for k in ("CUDA_HOME", "CUDA_PATH") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="module")
def gpuless(gpuless_prefix: Path, no_cuda_home: None,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, OpBuildResult]:
    store = Store(tmp_path_factory.mktemp("gpuless-store"))
    return {name: build_op(OpBuildRequest(name=name, source_dir=DATA / "ops" / name,
                                          prefix=gpuless_prefix, arch_list=ARCH), store=store)
            for name in TREES}


def _so(res: OpBuildResult, where: Path) -> Path:
    with zipfile.ZipFile(res.wheel) as zf:
        [member] = [n for n in zf.namelist() if n.endswith(".so")]
        return Path(zf.extract(member, where))


def test_the_gated_tree_builds_through_the_shim_named_in_report_and_key(
        gpuless: dict[str, OpBuildResult]) -> None:
    res = gpuless["gated"]
    assert res.gpu_gate is not None and res.gpu_gate.mechanism == MECHANISM
    meta = json.loads((res.wheel.parent / "meta.json").read_text())
    assert meta["inputs"]["flags"][0] == RECIPE
    assert meta["inputs"]["flags"][-1] == f"gpu-gate={MECHANISM}@1"
    assert meta["gpu_gate"]["found"] == list(res.gpu_gate.found)
    assert gpuless["wholepkg"].gpu_gate is None
    meta = json.loads((gpuless["wholepkg"].wheel.parent / "meta.json").read_text())
    assert not any(f.startswith("gpu-gate") for f in meta["inputs"]["flags"])


def test_the_dispatch_fixup_was_chosen_from_the_source(gpuless: dict[str, OpBuildResult]) -> None:
    for name, where in (("gated", "src/vision.cpp"), ("wholepkg", "wholepkg/csrc/vision.cpp")):
        res = gpuless[name]
        [fixup] = res.fixups_applied
        assert fixup.name == "dispatch-scalar-type" and fixup.automatic
        assert fixup.files == (where,)
        meta = json.loads((res.wheel.parent / "meta.json").read_text())
        assert meta["inputs"]["fixups"] == ["dispatch-scalar-type@1"]
        assert meta["fixups_applied"][0]["files"] == [where]


def test_exact_cuda_targets_and_the_cuda_code_a_gpu_host_would_build(
        gpuless: dict[str, OpBuildResult], tmp_path: Path) -> None:
    """cuobjdump lists exactly sm_80 + sm_90 cubins and sm_90 PTX; the CUDA launchers (only
    compiled on setup.py's GPU branch) are defined in the module; every source was compiled."""
    tool = find_cuobjdump(None, prefix_facts(VENV).site_packages)
    if tool is None:
        pytest.skip("no cuobjdump (toolkit, PATH, nvidia wheels or triton in .venv)")
    launchers = {"gated": "envbuild_gated_scale_cuda<float>",
                 "wholepkg": "wholepkg_shift_cuda<float>"}
    for name, res in gpuless.items():
        so = _so(res, tmp_path / name)
        elf = subprocess.run([str(tool), "--list-elf", str(so)], capture_output=True, text=True,
                             check=True).stdout
        ptx = subprocess.run([str(tool), "--list-ptx", str(so)], capture_output=True, text=True,
                             check=True).stdout
        assert sorted(re.findall(r"\.(sm_\d+)\.cubin", elf)) == ["sm_80", "sm_90"], elf
        assert re.findall(r"\.(sm_\d+)\.ptx", ptx) == ["sm_90"], ptx
        symbols = subprocess.run(["nm", "-DC", "--defined-only", str(so)], capture_output=True,
                                 text=True, check=True).stdout
        assert launchers[name] in symbols, name
        log = (res.wheel.parent / "build.log").read_text()
        tree = DATA / "ops" / name
        for src in sorted([*tree.rglob("*.cpp"), *tree.rglob("*.cu")]):
            assert re.search(rf"-c \S*/src/{re.escape(src.relative_to(tree).as_posix())} ",
                             log), (name, src)


def test_the_built_modules_import_and_run_on_the_cpu(gpuless: dict[str, OpBuildResult],
                                                     gpuless_prefix: Path) -> None:
    code = ("import warnings; warnings.simplefilter('ignore'); import torch, envbuild_gated, "
            "wholepkg; from wholepkg import _C\n"
            "x = torch.ones(5, dtype=torch.float64); envbuild_gated.scale_(x, 3.0)\n"
            "y = torch.ones(4); wholepkg.shift_(y, 2)\n"
            "print(envbuild_gated.has_cuda(), _C.has_cuda(), float(x.sum()), float(y.sum()))")
    out = subprocess.run([str(gpuless_prefix / "bin" / "python"), "-c", code], check=True,
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert out.split() == ["True", "True", "15.0", "12.0"]


def test_without_the_shim_the_gate_refuses_and_the_report_shows_the_real_error(
        gpuless_prefix: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same tree with the shim left out fails in setup.py (no compile), and the message
    shows setup.py's traceback and the gate diagnosis before pip's wrapper text."""
    monkeypatch.setattr(ops, "find_gate", lambda _src: None)
    monkeypatch.setenv("ENVBUILD_HOME", str(tmp_path / "home"))
    said: list[str] = []
    with pytest.raises(BuildFailed) as err:
        build_op(OpBuildRequest(name="gated", source_dir=DATA / "ops" / "gated",
                                prefix=gpuless_prefix, arch_list=ARCH), store=Store(tmp_path / "s"),
                 log=said.append)
    [building] = [line for line in said if line.startswith("building gated for")]
    assert "fixup dispatch-scalar-type@1 (auto): 1 file(s)" in building  # said before the fail
    text = err.value.message
    assert text.startswith("building gated failed")
    assert "first error (traceback" in text and "[setup-requires-visible-gpu]" in text
    first = text.index("NotImplementedError: CUDA is not available")
    assert first < text.index("--- last lines of the build log ---")
    assert "no known failure signature" not in text
    assert list((tmp_path / "home" / "logs").glob("gated-*.log"))
