"""CPU builds: a CPU-only torch and an op without ``.cu`` sources build with the host
compiler alone (no nvcc), and the demo op's CPU sanity kind can fail.

The compile test builds one deliberately wrong variant of the demo op
(``envspecs/demo-ops/msda_cpu`` with its pixel centres moved) for real, against torch's
CPU wheel unpacked into a layered prefix, and the ``msdeformattn-cpu`` checks must FAIL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.opbuild.buildenv import build_env
from builder.opbuild.headers import check_headers, device_sources
from builder.opbuild.ops import NO_NVCC, OpBuildRequest, build_op, key_inputs
from builder.opbuild.preflight import PreflightError, Toolchain, quick_toolchain
from builder.opbuild.store import KeyInputs, Store, op_key
from builder.opbuild.toolchain import prefix_facts
from tests.helpers import ENVSPECS, REPO, run_cli
from tests.helpers.prefix import layered_venv

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="no g++ on PATH on this machine")
DEMO_OP = ENVSPECS / "demo-ops" / "msda_cpu"
CPU_TORCH = "torch==2.13.0+cpu"


def _fake_cpu_prefix(root: Path, cuda: str | None = None) -> Path:
    """A venv whose torch is only a version.py (what the toolchain reads; nothing imports it)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    torch_dir = prefix_facts(root).site_packages / "torch"
    torch_dir.mkdir()
    (torch_dir / "__init__.py").write_text("")
    (torch_dir / "version.py").write_text(
        f"__version__ = '2.13.0+{'cpu' if cuda is None else 'cu130'}'\ncuda = {cuda!r}\n")
    return root


def test_the_demo_op_has_no_device_code() -> None:
    assert device_sources(DEMO_OP) == []
    assert (DEMO_OP / "src" / "msda_cpu.cpp").is_file()


@needs_gxx
def test_cpu_torch_and_no_device_code_need_no_toolkit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a CUDA toolkit named by the caller's shell must not leak into a CPU build
    monkeypatch.setenv("CUDA_HOME", "/usr/local/cuda")
    prefix = _fake_cpu_prefix(tmp_path / "p")
    tc = quick_toolchain(prefix, ("8.6",), device_code=False)
    assert tc.cpu_only and tc.toolkit is None and tc.arch_list == ()
    assert any("ignored: a CPU build has no device code" in w for w in tc.warnings)
    inputs = key_inputs_for(tc)
    assert inputs.nvcc_version == NO_NVCC == "none" and inputs.arch_list == ()
    assert inputs.torch_cuda == "" and inputs.torch_version == "2.13.0+cpu"
    env = build_env(tc, tmp_path / "work", jobs=1)
    for var in ("CUDA_HOME", "CUDA_PATH", "TORCH_CUDA_ARCH_LIST", "FORCE_CUDA",
                "PYTORCH_NVCC", "NVCC_APPEND_FLAGS"):
        assert var not in env, var
    assert env["CXX"].endswith("g++")


def key_inputs_for(tc: Toolchain) -> KeyInputs:
    req = OpBuildRequest(name="msda-cpu", source_dir=DEMO_OP, prefix=tc.prefix,
                         arch_list=("8.6",))
    return key_inputs(req, tc, "digest")


@needs_gxx
def test_cpu_key_ignores_the_arch_list(tmp_path: Path) -> None:
    a = quick_toolchain(_fake_cpu_prefix(tmp_path / "a"), (), device_code=False)
    b = quick_toolchain(_fake_cpu_prefix(tmp_path / "b"), ("9.0",), device_code=False)
    # the arch list asked for does not enter a CPU build's key
    assert op_key(key_inputs_for(a)) == op_key(key_inputs_for(b))


@needs_gxx
def test_device_code_with_a_cpu_torch_is_refused(tmp_path: Path) -> None:
    prefix = _fake_cpu_prefix(tmp_path / "p")
    with pytest.raises(PreflightError, match="CPU-only build") as err:
        quick_toolchain(prefix, ("8.6",), device_code=True)
    assert "without .cu sources builds for the CPU" in (err.value.hint or "")


def test_a_cuda_torch_still_needs_a_toolkit_for_a_cpu_only_op(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA builds keep every check: no toolkit found is still an error."""
    import builder.opbuild.preflight as pf

    monkeypatch.setattr(pf, "find_toolkits", lambda *a: [])
    prefix = _fake_cpu_prefix(tmp_path / "p", cuda="13.0")
    with pytest.raises(PreflightError, match="no CUDA toolkit found"):
        quick_toolchain(prefix, ("9.0",), device_code=False)


@needs_gxx
def test_header_preflight_of_a_cpu_build_leaves_out_with_cuda(tmp_path: Path) -> None:
    assert GXX is not None
    op = tmp_path / "op"
    op.mkdir()
    (op / "k.cpp").write_text('#ifdef WITH_CUDA\n#include "cuda_only.h"\n#endif\n'
                              "#include <vector>\n")
    cpu = check_headers(op, Path(GXX), [], [], [], cuda=False)
    assert cpu.ok and cpu.unattributed == ()
    cuda = check_headers(op, Path(GXX), [], [], [])
    assert [m.header for m in cuda.unattributed] == ["cuda_only.h"]


# --- one real compile: a wrong CPU kernel must FAIL the sanity check ---------------------

def _cpu_torch_site(dest: Path) -> Path:
    """torch's CPU wheel, unpacked into ``dest``: taken from pip's configured find-links or
    the demo's wheelhouse (``make demo`` fills it), never downloaded; skips without it."""
    from builder.opbuild.checks import unpack_wheel

    wheels = dest / "wheels"
    res = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                          "--no-index", "--find-links", str(REPO / ".envbuild/demo/wheels"),
                          "--only-binary", ":all:", "--python-version", "3.11",
                          "--platform", "manylinux_2_28_x86_64", "--dest", str(wheels),
                          CPU_TORCH], capture_output=True, text=True, timeout=900)
    found = sorted(wheels.glob("torch-*.whl"))
    if res.returncode != 0 or not found:
        pytest.skip(f"no {CPU_TORCH} wheel in pip's find-links or .envbuild/demo/wheels "
                    "(run `make demo` once)")
    site = unpack_wheel(found[0], dest / "site")
    shutil.rmtree(wheels)
    return site


@pytest.fixture(scope="session")
def cpu_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A python 3.11 venv seeing torch's CPU wheel first, then .venv (pip, setuptools and
    torch's pure-python dependencies)."""
    if sys.version_info[:2] != (3, 11):
        pytest.skip(f"the CPU torch wheel is for python 3.11, not {sys.version.split()[0]}")
    if GXX is None:
        pytest.skip("no g++ on PATH on this machine")
    root = tmp_path_factory.mktemp("cpu-torch")
    site = _cpu_torch_site(root)
    prefix = layered_venv(root / "prefix", before=[site])
    facts = prefix_facts(prefix)
    assert facts.torch_version == "2.13.0+cpu" and facts.torch_cuda is None
    return prefix


@pytest.mark.compile
@pytest.mark.slow
def test_a_wrong_cpu_kernel_fails_the_sanity_check(cpu_prefix: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "msda_cpu"
    shutil.copytree(DEMO_OP, wrong)
    kernel = wrong / "src" / "msda_cpu.cpp"
    text = kernel.read_text()
    # the forward samples a quarter pixel off the pixel centres (the backward is untouched)
    centre = "static_cast<double>(l[n][q][m][lv][p][0]) * width - 0.5;"
    assert text.count(centre) == 2
    kernel.write_text(text.replace(centre, centre.replace("- 0.5", "- 0.25"), 1))
    result = build_op(OpBuildRequest(name="msda-cpu-wrong", source_dir=wrong, prefix=cpu_prefix,
                                     arch_list=(), sanity="msdeformattn-cpu"),
                      store=Store(tmp_path / "store"))
    steps = {s.name: s.detail for s in result.steps}
    assert steps["check-targets"].startswith("no device code (CPU build): MultiScale")
    meta = (result.wheel.parent / "meta.json").read_text()
    assert '"nvcc_version": "none"' in meta and '"arch_list": []' in meta

    out = run_cli("sanity", "--prefix", str(cpu_prefix), "--check", "msdeformattn-cpu",
                  "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    rows = {r["check"]: r for r in json.loads(out.stdout)["checks"]}
    assert rows["msdeformattn-cpu.import"]["status"] == "PASS"
    for check in ("msdeformattn-cpu.forward-float64", "msdeformattn-cpu.forward-float32"):
        assert rows[check]["status"] == "FAIL" and rows[check]["device"] == "cpu", rows[check]
        assert "Tensor-likes are not close" in rows[check]["reason"]
    # GPU checks are never a PASS here: SKIPPED with the reason
    assert rows["torch.matmul"]["status"] == "SKIPPED"
    assert "CPU-only build" in rows["torch.matmul"]["reason"]


def test_an_op_of_the_cpu_kind_is_not_also_checked_as_the_cuda_kind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo op shares the CUDA op's module name: sanity plans only its own kind for it,
    while an op recorded as plain ``import`` still gets the kernel kind of its module."""
    from tests.helpers.sanity import load_run_checks

    checks = load_run_checks()
    monkeypatch.setattr(checks.importlib.util, "find_spec", lambda name: object())
    demo = {"op": "msda-cpu", "sanity": "msdeformattn-cpu",
            "modules": ["MultiScaleDeformableAttention"], "source": "demo-ops", "commit": None}
    kinds = [k for k, _ in checks.plan([demo], [])]
    assert "msdeformattn-cpu" in kinds and "msdeformattn" not in kinds
    plain = {**demo, "sanity": None}
    assert "msdeformattn" in [k for k, _ in checks.plan([plain], [])]
    # the CPU kind is never picked up from an importable module alone
    assert "msdeformattn-cpu" not in [k for k, _ in checks.plan([], [])]
