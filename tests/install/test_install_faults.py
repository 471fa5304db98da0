"""Faults during install: disk full, vanished downloads, kill -9, Ctrl-C, a second invocation."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.install.generations import Generations
from builder.util.fs import file_lock
from tests.helpers import REPO, run_cli
from tests.helpers.prefix import demo_env_works, generation_leftovers


@pytest.fixture
def installed(local: LocalChannel, tmp_path: Path) -> tuple[Path, Path]:
    """A prefix at generation 1 and its lockfile."""
    lockfile = write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")
    prefix = tmp_path / "p"
    out = run_cli("install", str(lockfile), "--prefix", str(prefix))
    assert out.returncode == 0, out.stderr
    return prefix, lockfile


@pytest.mark.parametrize("point", ["fetch", "conda", "pip", "activation", "switch"])
def test_disk_full_leaves_previous_env(installed: tuple[Path, Path], point: str) -> None:
    prefix, lockfile = installed
    out = run_cli("install", str(lockfile), "--prefix", str(prefix), "--force",
                  env={"ENVBUILD_FAULT": f"{point}:enospc"})
    assert out.returncode == 1, out.stderr
    assert "No space left on device" in out.stderr
    assert "Traceback" not in out.stderr
    assert Generations(prefix).current() == 1 and demo_env_works(prefix)
    assert generation_leftovers(prefix) == []


@pytest.mark.reliability
@pytest.mark.parametrize("point", ["fetch", "conda", "pip", "activation", "switch"])
def test_kill_9_then_next_run_completes(installed: tuple[Path, Path], point: str) -> None:
    prefix, lockfile = installed
    out = run_cli("install", str(lockfile), "--prefix", str(prefix), "--force",
                  env={"ENVBUILD_FAULT": f"{point}:kill"})
    assert out.returncode == -9
    assert Generations(prefix).current() == 1 and demo_env_works(prefix)
    again = run_cli("install", str(lockfile), "--prefix", str(prefix), "--force")
    assert again.returncode == 0, again.stderr
    assert (Generations(prefix).current() or 0) >= 2 and demo_env_works(prefix)
    assert generation_leftovers(prefix) == []


def test_ctrl_c_leaves_previous_env(installed: tuple[Path, Path]) -> None:
    prefix, lockfile = installed
    out = run_cli("install", str(lockfile), "--prefix", str(prefix), "--force",
                  env={"ENVBUILD_FAULT": "pip:interrupt"})
    assert out.returncode == 130
    assert Generations(prefix).current() == 1 and demo_env_works(prefix)
    assert generation_leftovers(prefix) == []


def test_vanished_package_file_is_a_clear_error(local: LocalChannel, tmp_path: Path) -> None:
    copy = LocalChannel(channel=tmp_path / "chan", wheelhouse=local.wheelhouse,
                        python_version=local.python_version)
    shutil.copytree(local.channel, copy.channel)
    lockfile = write_channel_lockfile(copy, tmp_path / "demo.conda-lock.yml")
    prefix = tmp_path / "p"
    assert run_cli("install", str(lockfile), "--prefix", str(prefix)).returncode == 0
    tool = next((copy.channel / "noarch").glob("*.conda"))
    tool.unlink()
    # a different prefix needs the (cached) archives only; a fresh cache needs the file
    fresh_home = tmp_path / "fresh-home"
    out = run_cli("install", str(lockfile), "--prefix", str(prefix), "--force",
                  env={"ENVBUILD_HOME": str(fresh_home)})
    assert out.returncode == 1, out.stderr
    assert "could not download" in out.stderr and tool.name in out.stderr
    assert Generations(prefix).current() == 1 and demo_env_works(prefix)


def test_broken_url_is_a_clear_error(installed: tuple[Path, Path], tmp_path: Path) -> None:
    prefix, lockfile = installed
    broken = tmp_path / "broken.conda-lock.yml"
    text = lockfile.read_text()
    broken.write_text(text.replace("url: file://", "url: http://127.0.0.1:9/nothing"))
    out = run_cli("install", str(broken), "--prefix", str(prefix),
                  env={"ENVBUILD_HOME": str(tmp_path / "h2")})
    assert out.returncode == 1, out.stderr
    assert "could not download" in out.stderr
    assert Generations(prefix).current() == 1 and demo_env_works(prefix)


@pytest.mark.reliability
def test_second_invocation_waits_and_says_so(installed: tuple[Path, Path]) -> None:
    prefix, lockfile = installed
    with file_lock(Generations(prefix).root / ".lock"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "builder", "install", str(lockfile), "--prefix", str(prefix)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        assert proc.poll() is None, "the second invocation did not wait"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "waiting for the lock" in err and "up to date" in out
