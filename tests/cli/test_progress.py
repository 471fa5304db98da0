"""Stage lines with times on stderr (plain off a terminal), -q, and sources checked first."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.util import progress
from tests.helpers import run_cli


def test_install_prints_one_timed_line_per_stage(local: LocalChannel, tmp_path: Path) -> None:
    lockfile = write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")
    out = run_cli("install", str(lockfile), "--prefix", str(tmp_path / "p"))
    assert out.returncode == 0, out.stderr
    stages = re.findall(r"^envbuild install: (\w+) done in (\d+\.\d\d)s$", out.stderr, re.M)
    names = [s for s, _ in stages]
    assert names[:3] == ["fetch", "conda", "pip"] and names[-2:] == ["activation", "state"]
    assert len(re.findall(r"^envbuild install: fetched \S+ \(.* MB\) \[\d+/\d+\]$",
                          out.stderr, re.M)) >= 1  # downloads show progress off a terminal
    assert "\x1b[" not in out.stderr
    quiet = run_cli("-q", "install", str(lockfile), "--prefix", str(tmp_path / "q"))
    assert quiet.returncode == 0, quiet.stderr
    assert "done in" not in quiet.stderr and "fetched" not in quiet.stderr
    assert "installed" in quiet.stdout  # the result itself is still printed


def test_a_failed_stage_says_failed(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVBUILD_QUIET", raising=False)
    with pytest.raises(RuntimeError), progress.stage("lock", "conda"):
        raise RuntimeError("boom")
    assert re.fullmatch(r"envbuild lock: conda failed in \d+\.\d\ds\n", capsys.readouterr().err)


def test_lock_checks_sources_before_solving(tmp_path: Path) -> None:
    spec = tmp_path / "envspecs" / "s.yaml"
    spec.parent.mkdir()
    spec.write_text('name: s\npython: "3.11"\ntorch: "==2.13.0"\ntorch_from: pypi\n'
                    "torchvision: false\nchannels: [conda-forge]\n"
                    "sources:\n  gone: {git: 'file:///nonexistent-envbuild/repo.git', "
                    "rev: 0123456789abcdef0123456789abcdef01234567}\n")
    # the channel is unreachable too: the source must be what is reported, and fast
    out = run_cli("lock", str(spec), "--cuda", "cpu", "--channel",
                  "conda-forge=file:///nonexistent-envbuild/channel", "-o",
                  str(tmp_path / "s.conda-lock.yml"))
    assert out.returncode != 0
    assert "source 'gone'" in out.stderr, out.stderr
    assert "envbuild lock: sources failed in" in out.stderr
    assert "envbuild lock: conda" not in out.stderr
