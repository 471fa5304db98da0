"""``envbuild run --prefix`` and ``envbuild shell``: commands inside an activated env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builder.install.activation import activated_environ, write_activation
from tests.helpers import REPO, run_cli
from tests.helpers.smi import smi_env

SHOW = ("import json, os; print(json.dumps({k: os.environ.get(k) for k in ("
        "'CUDA_HOME', 'CONDA_PREFIX', 'CUDA_DEVICE_ORDER', 'PATH', 'ENVBUILD_PREFIX', "
        "'FROM_PACKAGE')}))")
NO_GPU = smi_env("no-driver")


def _prefix(root: Path, *, nvcc: bool) -> Path:
    """A prefix with envbuild's activation scripts, a package's own one, and a command."""
    (root / "bin").mkdir(parents=True)
    if nvcc:
        (root / "bin" / "nvcc").write_text("#!/bin/sh\n")
    write_activation(root, root, "t")
    (root / "etc/conda/activate.d/zz-package.sh").write_text("export FROM_PACKAGE=yes\n")
    hello = root / "bin" / "hello-from-env"
    hello.write_text("#!/bin/sh\necho \"hello $CONDA_PREFIX\"\n")
    hello.chmod(0o755)
    return root


def test_activated_environ_matches_the_activation_scripts(tmp_path: Path) -> None:
    prefix = _prefix(tmp_path / "env", nvcc=True)
    env = activated_environ(prefix, {"PATH": "/usr/bin:/bin", "CUDA_HOME": "/usr/local/cuda"})
    assert env["PATH"].split(":")[0] == str(prefix / "bin")
    assert env["CONDA_PREFIX"] == str(prefix)
    assert env["CUDA_HOME"] == str(prefix)  # the env's toolkit, not the system one
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["FROM_PACKAGE"] == "yes"
    cpu = _prefix(tmp_path / "cpu", nvcc=False)
    assert "CUDA_HOME" not in activated_environ(cpu, {"PATH": "/usr/bin:/bin",
                                                      "CUDA_HOME": "/usr/local/cuda"})


def test_run_prefix_runs_the_command_inside(tmp_path: Path) -> None:
    prefix = _prefix(tmp_path / "env", nvcc=True)
    out = run_cli("run", "--prefix", str(prefix), "--", sys.executable, "-c", SHOW, env=NO_GPU)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["CONDA_PREFIX"] == seen["ENVBUILD_PREFIX"] == str(prefix)
    assert seen["CUDA_HOME"] == str(prefix)
    assert seen["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert seen["FROM_PACKAGE"] == "yes"
    # a command found on the env's own PATH, and its exit status passed through
    out = run_cli("run", "--prefix", str(prefix), "--", "hello-from-env", env=NO_GPU)
    assert out.returncode == 0 and out.stdout.strip() == f"hello {prefix}"
    out = run_cli("run", "--prefix", str(prefix), "--", "sh", "-c", "exit 7", env=NO_GPU)
    assert out.returncode == 7


def test_run_prefix_that_is_not_an_env_is_usage_error(tmp_path: Path) -> None:
    out = run_cli("run", "--prefix", str(tmp_path / "nope"), "--", "true", env=NO_GPU)
    assert out.returncode == 2
    assert "is not an environment" in out.stderr


def test_shell_opens_inside_the_env(tmp_path: Path) -> None:
    prefix = _prefix(tmp_path / "env", nvcc=False)
    env = {**os.environ, **NO_GPU, "SHELL": "/bin/sh"}
    done = subprocess.run([sys.executable, "-m", "builder", "shell", "--prefix", str(prefix)],
                          input="echo \"in=$CONDA_PREFIX shell=$ENVBUILD_SHELL\"\nexit 3\n",
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert done.returncode == 3, done.stderr
    assert f"in={prefix} shell={prefix}" in done.stdout


def test_run_json_prints_the_gpu_plan_on_stderr(tmp_path: Path) -> None:
    prefix = _prefix(tmp_path / "env", nvcc=False)
    env = smi_env("server-4090-a6000")
    out = run_cli("run", "--json", "--prefix", str(prefix), "--gpus", "1", "--",
                  "hello-from-env", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"hello {prefix}"  # stdout stays the command's
    plan = json.loads(out.stderr.strip().splitlines()[-1])
    assert plan["cuda_visible_devices"] == "1" and plan["cuda_device_order"] == "PCI_BUS_ID"
    assert plan["gpus"][0]["visible_as"] == 0 and plan["prefix"] == str(prefix)
