"""A lockfile's warnings are printed by ``install`` and ``env`` before they start."""

from __future__ import annotations

from pathlib import Path

from builder.lock.notices import lockfile_warnings
from tests.helpers import REPO, run_cli

COMMITTED = REPO / "lockfiles" / "mask2former-cu117.conda-lock.yml"


def test_committed_lockfile_warnings_are_read() -> None:
    warnings = lockfile_warnings(COMMITTED)
    assert any("nvidia-cuda-runtime-cu11==11.7.99" in w for w in warnings)
    assert any("using 'nvidia/label/cuda-11.8.0::cuda-nvcc 11.8.*'" in w for w in warnings)


def test_unreadable_lockfile_has_no_warnings_to_show(tmp_path: Path) -> None:
    bad = tmp_path / "x.conda-lock.yml"
    bad.write_text("version: [\n")
    assert lockfile_warnings(bad) == [] and lockfile_warnings(tmp_path / "none.yml") == []


def test_install_prints_them_before_it_starts(tmp_path: Path) -> None:
    # --offline with an empty package cache: install stops at the first package it lacks,
    # after the warnings were printed
    out = run_cli("install", str(COMMITTED), "--prefix", str(tmp_path / "env"), "--offline")
    assert out.returncode == 1, out.stderr
    err = out.stderr
    assert "records" in err and "warning(s) from when it was locked" in err
    assert err.index("nvidia-cusolver-cu11==11.4.0.1") < err.index("error:")


def test_env_prints_them_before_it_starts(tmp_path: Path) -> None:
    out = run_cli("env", "envspecs/mask2former.yaml", "--cuda", "11.7", "--prefix",
                  str(tmp_path / "env"), "--offline", cwd=REPO)
    assert out.returncode != 0
    assert "warning(s) from when it was locked" in out.stderr
    assert "nvidia-cublas-cu11==11.10.3.66" in out.stderr


def test_onboard_prints_them_before_the_install_starts(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    if not (REPO / ".venv" / ".setup-stamp").exists():
        import pytest

        pytest.skip("the tool venv is not set up (make setup)")
    out = subprocess.run(["bash", str(REPO / "onboard.sh"), "--cuda", "11.7", "--prefix",
                          str(tmp_path / "env"), "--offline"], capture_output=True, text=True,
                         cwd=REPO, timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert out.returncode != 0  # an empty package cache, offline
    assert "install the environment from" in out.stdout
    assert "warning(s) from when it was locked" in out.stderr
    assert out.stderr.index("nvidia-cusparse-cu11==11.7.4.91") < out.stderr.index("error:")
