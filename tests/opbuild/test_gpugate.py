"""The visible-gpu-shim: which trees get it, and what it does (and does not) change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builder.opbuild.gpugate import MECHANISM, SHIM, find_gate, gate_env
from tests.helpers import DATA

OPS = DATA / "ops"


def test_the_gated_fixture_has_a_gate_and_the_others_do_not() -> None:
    gate = find_gate(OPS / "gated")
    assert gate is not None and gate.mechanism == MECHANISM
    lines = (OPS / "gated" / "setup.py").read_text().splitlines()
    [where] = gate.found
    name, lineno = where.split(":")
    assert name == "setup.py" and "torch.cuda.is_available()" in lines[int(lineno) - 1]
    assert gate.key_flag() == f"gpu-gate={MECHANISM}@1"
    for plain in ("tiny", "msda", "wholepkg"):
        assert find_gate(OPS / plain) is None, plain


def test_only_setup_py_and_the_helpers_it_imports_are_read(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("# if torch.cuda.is_available(): ...\nimport os\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "train.py").write_text("torch.cuda.is_available()\n")
    (tmp_path / "demo.py").write_text("print(torch.cuda.is_available())\n")  # not imported
    (tmp_path / "setup_helpers.py").write_text("use_cuda = torch.cuda .is_available ()\n")
    assert find_gate(tmp_path) is None
    (tmp_path / "setup.py").write_text("import os\nfrom setup_helpers import use_cuda\n")
    gate = find_gate(tmp_path)
    assert gate is not None and gate.found == ("setup_helpers.py:1",)
    (tmp_path / "setup.py").unlink()
    assert find_gate(tmp_path) is None  # a pyproject-only tree has no setup.py gate


def _fake_torch(root: Path, available: bool) -> None:
    cuda = root / "torch" / "cuda"
    cuda.mkdir(parents=True)
    (root / "torch" / "__init__.py").write_text("from torch import cuda\n")
    (cuda / "__init__.py").write_text(
        f"def is_available():\n    return {available}\n\n"
        "def device_count():\n    return 0\n")


def _python(code: str, env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-S", "-c", "import site; site.main()\n" + code],
                         env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_shim_answers_is_available_and_changes_nothing_else(tmp_path: Path) -> None:
    _fake_torch(tmp_path / "lib", available=False)
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "lib")}
    probe = ("import torch.cuda as c; print(c.is_available(), c.device_count(), "
             "getattr(c.is_available, '__wrapped__', None) is not None)")
    assert _python(probe, base, tmp_path) == "False 0 False"
    env = gate_env(base, tmp_path / "work")
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path / "work" / "gpu-gate")
    assert (tmp_path / "work" / "gpu-gate" / "sitecustomize.py").read_bytes() == SHIM.read_bytes()
    assert _python(probe, env, tmp_path) == "True 0 True"
    # disarmed (the variable is what arms it): a stray PYTHONPATH entry changes nothing
    assert _python(probe, {**env, "ENVBUILD_GPU_GATE": ""}, tmp_path) == "False 0 False"
    # a process that never imports torch.cuda is untouched (pip's own process)
    assert _python("import sys; print('torch' in sys.modules)", env, tmp_path) == "False"


def test_a_shadowed_sitecustomize_still_runs(tmp_path: Path) -> None:
    _fake_torch(tmp_path / "lib", available=False)
    (tmp_path / "lib" / "sitecustomize.py").write_text("import builtins\nbuiltins.SEEN = 1\n")
    env = gate_env({"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "lib")},
                   tmp_path / "work")
    assert _python("import builtins, torch.cuda as c; print(builtins.SEEN, c.is_available())",
                   env, tmp_path) == "1 True"


def test_the_shim_on_the_real_torch_of_the_test_venv(tmp_path: Path) -> None:
    """With the real torch (no GPU here, or one): is_available() is True under the shim, and
    the CUDA runtime's own answer is kept as ``__wrapped__``."""
    pytest.importorskip("torch")
    env = gate_env({"PATH": "/usr/bin:/bin"}, tmp_path / "work")
    code = ("import warnings; warnings.simplefilter('ignore'); import torch; "
            "print(torch.cuda.is_available(), torch.cuda.is_available.__wrapped__() in "
            "(True, False), torch.cuda.device_count() >= 0)")
    assert _python(code, env, tmp_path) == "True True True"
