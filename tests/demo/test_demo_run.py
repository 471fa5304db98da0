"""``make demo`` re-locks its own lockfile (never committed) when the demo spec changed."""

from __future__ import annotations

from pathlib import Path

import pytest

import builder.demo.run as demo_run
import builder.lock as lock_api


@pytest.mark.parametrize(("diffs", "kept"), [([], True), (["the envspec changed"], False)])
def test_a_stale_demo_lockfile_is_dropped_and_a_fresh_one_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        diffs: list[str], kept: bool) -> None:
    lockfile = tmp_path / "demo-cpu.conda-lock.yml"
    lockfile.write_text("locked\n")
    asked: list[lock_api.LockRequest] = []

    def check(req: lock_api.LockRequest) -> list[str]:
        asked.append(req)
        return diffs

    monkeypatch.setattr(lock_api, "check", check)
    demo_run._drop_if_stale(lockfile, "file:///channel")
    assert lockfile.exists() is kept
    [req] = asked
    assert req.output == lockfile and req.channels == ("file:///channel",)
    assert req.resolution.cuda == "cpu"  # the demo spec says cuda: {default: cpu}
    assert ("stale (the envspec changed)" in capsys.readouterr().err) is not kept


def test_no_demo_lockfile_asks_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_api, "check", lambda req: pytest.fail("checked a missing file"))
    demo_run._drop_if_stale(tmp_path / "none.conda-lock.yml", "file:///channel")
