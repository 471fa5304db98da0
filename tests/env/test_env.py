"""builder.env.pipeline: stage orchestration, default prefix, no-op fast path, missing stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import builder.env.pipeline as env_mod
from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.env.pipeline import EnvRequest, default_prefix, run_env

SPEC = "name: demo\npython: '3.11'\ntorch: '==2.13.0'\ntorch_from: pypi\n"


def test_default_prefix_is_in_the_project(tmp_path: Path) -> None:
    spec = tmp_path / "envspecs" / "x.yaml"
    assert default_prefix(spec, "demo", "11.7") == tmp_path / ".envbuild/envs/demo-cu117"
    cpu = default_prefix(tmp_path / "x.yaml", "demo", "cpu")
    assert cpu == tmp_path / ".envbuild/envs/demo-cpu"


def _fake_stages(lockfile: Path, calls: list[str], sanity: bool = True) -> Any:
    from builder.env.stages import stage_install

    def resolve(ctx: Any) -> tuple[str, str]:
        calls.append("resolve")
        return "done", ""

    def lock(ctx: Any) -> tuple[str, str]:
        ctx.lockfile = lockfile
        return "up to date", ""

    def sanity_stage(ctx: Any) -> tuple[str, str]:
        return ("done", "") if sanity else ("missing", "no sanity")

    return (("resolve", resolve), ("lock", lock), ("install", stage_install),
            ("build", lambda ctx: ("skipped", "no ops")), ("sanity", sanity_stage))


def test_env_runs_stages_then_is_a_noop(local: LocalChannel, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "envspecs" / "demo.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    lockfile = write_channel_lockfile(local, tmp_path / "lockfiles" / "demo-cpu.conda-lock.yml")
    calls: list[str] = []
    monkeypatch.setattr(env_mod, "STAGES", _fake_stages(lockfile, calls))
    first = run_env(EnvRequest(spec=spec, cuda="cpu"))
    assert [s.action for s in first.stages] == ["done", "up to date", "done", "skipped", "done"]
    assert (first.prefix / "bin" / "python3").exists()
    second = run_env(EnvRequest(spec=spec, cuda="cpu"))
    assert {s.action for s in second.stages} == {"up to date"} and calls == ["resolve"]
    spec.write_text(SPEC + "# touched\n")
    third = run_env(EnvRequest(spec=spec, cuda="cpu"))
    assert third.stages[2].action == "up to date" and calls == ["resolve", "resolve"]


def test_missing_stage_is_reported_not_passed(local: LocalChannel, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "demo.yaml"
    spec.write_text(SPEC)
    lockfile = write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")
    monkeypatch.setattr(env_mod, "STAGES", _fake_stages(lockfile, [], sanity=False))
    result = run_env(EnvRequest(spec=spec, cuda="cpu", prefix=tmp_path / "p"))
    assert not result.ok and result.stages[-1].action == "missing"
    assert env_mod.read_marker(tmp_path / "p") is None  # not recorded as complete
