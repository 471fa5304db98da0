"""Decisions every command takes from one place: the default CUDA of a spec, and the pins of
an op's source when there is a lockfile (``envbuild build`` and ``envbuild env`` compile the
same commit)."""

from __future__ import annotations

from pathlib import Path

import pytest

import builder.opbuild.plan as plan
from builder.env.pipeline import env_lockfile, run_env
from builder.env.stages import Context, EnvRequest, stage_build
from builder.opbuild.opmodels import OpBuildRequest
from builder.resolve.resolver import ResolveRequest, resolve, target_cuda
from builder.sources.fetch import pin_source
from builder.spec.envspec import load_spec
from builder.spec.places import cuda_tag, env_prefix, lockfile_path
from tests.helpers.git import git

NO_CUDA = 'name: nocuda\npython: "3.8"\ntorch: ">=1.9,<2.5"\n'


class _Stop(Exception):
    pass


@pytest.mark.parametrize("extra", ["", "torch_from: pypi\n"])
def test_a_spec_without_cuda_targets_the_same_cuda_in_resolve_and_env(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    spec = tmp_path / "envspecs" / "nocuda.yaml"
    spec.parent.mkdir()
    spec.write_text(NO_CUDA + extra)
    loaded = load_spec(spec)
    resolved = resolve(loaded, ResolveRequest()).cuda
    assert resolved != "cpu"  # the newest CUDA build, as `envbuild resolve` prints
    assert target_cuda(loaded) == resolved
    seen: list[str] = []

    def resolve_stage(ctx: Context) -> tuple[str, str]:
        seen.append(ctx.cuda)
        raise _Stop

    monkeypatch.setattr("builder.env.pipeline.STAGES", (("resolve", resolve_stage),))
    with pytest.raises(_Stop):
        run_env(EnvRequest(spec=spec))
    assert seen == [resolved]
    # the lockfile env looks for is the one `envbuild lock` writes by default
    expected = lockfile_path(spec, "nocuda", resolved)
    assert expected.name == f"nocuda-{cuda_tag(resolved)}.conda-lock.yml"
    expected.parent.mkdir()
    expected.write_text("")
    assert env_lockfile(spec, None, None) == expected
    assert env_prefix(spec, "nocuda", resolved).name == f"nocuda-{cuda_tag(resolved)}"


def test_requested_and_spec_default_cuda_win(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(NO_CUDA + 'cuda: {default: "11.7", allowed: ["11.7", "11.8"]}\n')
    loaded = load_spec(spec)
    assert target_cuda(loaded) == "11.7" == resolve(loaded, ResolveRequest()).cuda
    assert target_cuda(loaded, "11.8") == "11.8"


@pytest.fixture
def two_revs(tmp_path: Path) -> tuple[Path, str, str]:
    """A git repo whose op kernel differs between tags v1 and v2."""
    repo = tmp_path / "upstream"
    (repo / "ops").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    commits = []
    for tag in ("v1", "v2"):
        (repo / "ops" / "setup.py").write_text("print('op')\n")
        (repo / "ops" / "kernel.cu").write_text(f"// {tag}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", tag)
        git(repo, "tag", tag)
        commits.append(git(repo, "rev-parse", "HEAD"))
    return repo, commits[0], commits[1]


def _spec(tmp_path: Path, rev: str) -> Path:
    path = tmp_path / "envspecs" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'name: s\npython: "3.8"\ntorch: "1.13.1"\ncuda: {{default: "11.7"}}\n'
                    f'sources:\n  up: {{git: "https://example.invalid/up.git", rev: "{rev}"}}\n'
                    "ops:\n  - {name: k, source: up, path: ops}\n")
    return path


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[OpBuildRequest]:
    """Stop at the compile: record what each op would be built from."""
    seen: list[OpBuildRequest] = []

    def prepare(req: OpBuildRequest, log: object = None) -> OpBuildRequest:
        seen.append(req)
        return req

    monkeypatch.setattr(plan, "prepare_op", prepare)
    monkeypatch.setattr(plan, "install_prepared", lambda prepared: [])
    return seen


def test_build_and_env_compile_the_lockfiles_commit(
        tmp_path: Path, two_revs: tuple[Path, str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo, v1, v2 = two_revs
    spec = _spec(tmp_path, "v1")
    locked = pin_source("up", load_spec(spec).spec.sources["up"], load_spec(spec), {"up": repo})
    assert locked.commit == v1
    lockfile = lockfile_path(spec, "s", "11.7")  # the spec's default lockfile
    lockfile.parent.mkdir()
    lockfile.write_text("")  # its pins are given by locked_pins below
    monkeypatch.setattr(plan, "locked_pins", lambda path: {"up": locked} if path == lockfile
                        else pytest.fail(f"read {path}"))
    spec = _spec(tmp_path, "v2")  # the spec moved on; the lockfile was not re-locked
    seen = _capture(monkeypatch)
    logs: list[str] = []
    plan.build_spec(plan.BuildPlanRequest(spec=spec, prefix=tmp_path / "p",
                                          sources=(f"up={repo}",)), log=logs.append)
    assert [r.origin.commit for r in seen] == [v1]
    assert (seen[0].source_dir / "kernel.cu").read_text() == "// v1\n"
    assert any("building the locked commit" in line for line in logs), logs
    assert any(f"pinned by {lockfile}" in line for line in logs), logs

    loaded = load_spec(spec)
    ctx = Context(EnvRequest(spec=spec, sources=(f"up={repo}",)), loaded,
                  None, "11.7")  # type: ignore[arg-type]  # gens: unused by the build stage
    ctx.resolution = resolve(loaded, ResolveRequest(cuda="11.7"))
    ctx.lockfile = lockfile
    monkeypatch.setattr(Context, "prefix", property(lambda self: tmp_path / "p"))
    assert stage_build(ctx)[0] == "done"
    assert [r.origin for r in seen[1:]] == [seen[0].origin]
    assert seen[1].source_dir == seen[0].source_dir


def test_build_without_a_lockfile_takes_the_sources_from_the_spec(
        tmp_path: Path, two_revs: tuple[Path, str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _, _ = two_revs
    spec = _spec(tmp_path, "v2")
    monkeypatch.setattr(plan, "locked_pins", lambda path: pytest.fail(f"read {path}"))
    seen = _capture(monkeypatch)
    logs: list[str] = []
    plan.build_spec(plan.BuildPlanRequest(spec=spec, prefix=tmp_path / "p",
                                          sources=(f"up={repo}",)), log=logs.append)
    # no lockfile: a --source checkout is built as it is (a developer's working tree)
    assert [r.source_dir for r in seen] == [(repo / "ops").resolve()]
    assert (seen[0].source_dir / "kernel.cu").read_text() == "// v2\n"
    assert any("from the spec (no lockfile" in line for line in logs), logs


def test_a_lockfile_without_the_ops_source_is_refused(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.errors import CheckFailed

    spec = _spec(tmp_path, "v1")
    lockfile = tmp_path / "other.conda-lock.yml"
    lockfile.write_text("")
    monkeypatch.setattr(plan, "locked_pins", lambda path: {})
    _capture(monkeypatch)
    with pytest.raises(CheckFailed, match="pins no source 'up'"):
        plan.build_spec(plan.BuildPlanRequest(spec=spec, prefix=tmp_path / "p",
                                              lockfile=lockfile))


def test_a_cpu_only_spec_says_so_once(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text('name: c\npython: "3.11"\ntorch: "==2.13.0"\ntorch_from: pypi\n'
                    "cuda: {default: cpu}\n")
    loaded = load_spec(spec)
    assert target_cuda(loaded) == "cpu" == resolve(loaded, ResolveRequest()).cuda
    assert lockfile_path(spec, "c", target_cuda(loaded)).name == "c-cpu.conda-lock.yml"
    spec.write_text('name: c\npython: "3.11"\ntorch: "==2.13.0"\ncuda: {default: cpu}\n')
    from builder.errors import SpecError

    with pytest.raises(SpecError, match="needs torch_from: pypi"):
        resolve(load_spec(spec), ResolveRequest())
