"""``onboard.sh``: help, clear prerequisite failures, never re-solving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

ONBOARD = REPO / "onboard.sh"


def _onboard(*args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run(["bash", str(ONBOARD), *args], capture_output=True, text=True,
                          env=full, timeout=120, cwd=REPO)


def _fake_python38(tmp_path: Path) -> Path:
    """A python3.8 stand-in: answers version questions like a real 3.8 would."""
    script = tmp_path / "python3.8"
    script.write_text(
        "#!/bin/sh\n"
        "case \"$2\" in\n"
        "  *version_info*) exit 1 ;;\n"
        "  *) echo 3.8.18 ;;\n"
        "esac\n")
    script.chmod(0o755)
    return script


def test_help() -> None:
    out = _onboard("--help")
    assert out.returncode == 0
    for flag in ("--cuda", "--prefix", "--spec", "--lockfile"):
        assert flag in out.stdout


def test_unknown_option_is_usage_error() -> None:
    out = _onboard("--frobnicate")
    assert out.returncode == 2 and "unknown option: --frobnicate" in out.stderr


def test_bad_cuda_is_usage_error() -> None:
    out = _onboard("--cuda", "eleven")
    assert out.returncode == 2 and "--cuda must look like 11.7" in out.stderr


@pytest.mark.parametrize("args", [("--channel",), ("--cuda",), ("--spec",), ("--lockfile",),
                                  ("--prefix",), ("--channel", "--offline")])
def test_option_without_value_is_usage_error(args: tuple[str, ...]) -> None:
    out = _onboard(*args)
    assert out.returncode == 2, out.stderr
    assert f"{args[0]} needs " in out.stderr and "--help" in out.stderr


def test_old_python_fails_with_how_to_get_a_new_one(tmp_path: Path) -> None:
    out = _onboard(env={"PYTHON": str(_fake_python38(tmp_path))})
    assert out.returncode == 1
    assert "[1/6] prerequisites" in out.stdout
    assert "needs Python >= 3.10" in out.stderr and "3.8.18" in out.stderr
    assert "uv python install 3.11" in out.stderr


def test_missing_python_fails_clearly(tmp_path: Path) -> None:
    out = _onboard(env={"PYTHON": str(tmp_path / "no-python")})
    assert out.returncode == 1
    assert "found on PATH" in out.stderr and "uv python install 3.11" in out.stderr


def test_missing_lockfile_never_resolves(tmp_path: Path) -> None:
    spec = tmp_path / "team.yaml"
    spec.write_text("name: team\npython: '3.10'\ntorch: '2.1.0'\n")
    out = _onboard("--spec", str(spec), "--cuda", "12.1",
                   env={"PYTHON": sys.executable})
    assert out.returncode == 2
    assert "lockfiles/team-cu121.conda-lock.yml" in out.stderr
    assert "never re-solves" in out.stderr and "make lock CUDA=12.1" in out.stderr
    assert "[2/6]" not in out.stdout


def test_missing_spec(tmp_path: Path) -> None:
    out = _onboard("--spec", str(tmp_path / "nope.yaml"), env={"PYTHON": sys.executable})
    assert out.returncode == 2 and "nope.yaml not found" in out.stderr


@pytest.mark.e2e
@pytest.mark.network
@pytest.mark.slow
def test_onboard_from_a_fresh_clone_against_a_local_channel(tmp_path: Path,
                                                           demo_op_store: Path) -> None:
    """A teammate's first run: clone, committed lockfile, ./onboard.sh, then again (no-op)."""
    from builder.demo.localchannel import ensure_local_channel
    from builder.demo.run import fill_wheelhouse
    from tests.helpers import run_cli

    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        pytest.skip("the repository has no commit to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    local = ensure_local_channel(clone / ".envbuild" / "demo")
    spec = clone / "envspecs" / "demo.yaml"
    fill_wheelhouse(local.wheelhouse, spec)
    lockfile = clone / "lockfiles" / "demo-cpu.conda-lock.yml"
    # the lead locks and commits; the teammate only ever installs from the lockfile
    locked = run_cli("lock", str(spec), "--cuda", "cpu", "--channel", local.channel_url,
                     "-o", str(lockfile), cwd=clone)
    assert locked.returncode == 0, locked.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PYTHON"] = sys.executable  # any python >= 3.10 with venv works for the tool
    env["ENVBUILD_STORE"] = str(demo_op_store)  # the demo op compiles once per session
    first = subprocess.run(["./onboard.sh", "--spec", "envspecs/demo.yaml", "--cuda", "cpu"],
                           cwd=clone, capture_output=True, text=True, env=env, timeout=1500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    prefix = clone / ".envbuild" / "envs" / "demo-cpu"
    assert "The environment is ready" in first.stdout
    assert f". \"{prefix}/activate\"" in first.stdout
    out = subprocess.run([str(prefix / "bin" / "python"), "-c",
                          "import torch, envbuild_demo_greeting as g; print(g.greet())"],
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "hello from the pip layer", out.stderr
    second = subprocess.run(["./onboard.sh", "--spec", "envspecs/demo.yaml", "--cuda", "cpu"],
                            cwd=clone, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "up to date" in second.stdout
