"""Sources: pin a git repo made by the test, fetch and verify, detect tampering and moves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.errors import CheckFailed, UsageError
from builder.sources.fetch import (
    SourceUnreachable,
    fetch_source,
    parse_source_overrides,
    pin_source,
    pin_sources,
)
from builder.spec.envspec import load_spec
from tests.helpers.git import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "upstream"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "setup.py").write_text("print('hi')\n")
    (root / "ops").mkdir()
    (root / "ops" / "kernel.cu").write_text("__global__ void k() {}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    git(root, "tag", "v1")
    return root


def _spec(tmp_path: Path, rev: str, extra: str = "") -> Path:
    path = tmp_path / "envspecs" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'name: s\npython: "3.8"\ntorch: "1.13.1"\nsources:\n'
                    f'  up: {{git: "https://example.invalid/up.git", rev: "{rev}"}}\n{extra}')
    return path


def test_pin_git_commit_and_content(tmp_path: Path, repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    loaded = load_spec(_spec(tmp_path, "v1"))
    pinned = pin_source("up", loaded.spec.sources["up"], loaded, {"up": repo})
    assert pinned.kind == "git" and pinned.commit == head and pinned.rev == "v1"
    assert pinned.url == "https://example.invalid/up.git" and len(pinned.sha256) == 64
    # the same commit from a bare clone gives the same pin
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    assert pin_source("up", loaded.spec.sources["up"], loaded, {"up": bare}) == pinned


def test_fetch_verifies_and_caches(tmp_path: Path, repo: Path) -> None:
    loaded = load_spec(_spec(tmp_path, "main"))
    pinned = pin_source("up", loaded.spec.sources["up"], loaded, {"up": repo})
    dest = fetch_source(pinned, tmp_path / "cache", overrides={"up": repo})
    assert (dest / "ops" / "kernel.cu").read_text() == "__global__ void k() {}\n"
    assert fetch_source(pinned, tmp_path / "cache", overrides={"up": repo}) == dest


def test_tampered_cache_is_an_error(tmp_path: Path, repo: Path) -> None:
    loaded = load_spec(_spec(tmp_path, "main"))
    pinned = pin_source("up", loaded.spec.sources["up"], loaded, {"up": repo})
    dest = fetch_source(pinned, tmp_path / "cache", overrides={"up": repo})
    (dest / "setup.py").write_text("import os; os.system('evil')\n")
    with pytest.raises(CheckFailed, match="does not match the lockfile"):
        fetch_source(pinned, tmp_path / "cache", overrides={"up": repo})


def test_tampered_plain_directory_is_an_error(tmp_path: Path, repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    plain = tmp_path / "plain"
    plain.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", head], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(plain)], input=archive, check=True)
    loaded = load_spec(_spec(tmp_path, head))
    from_plain = pin_source("up", loaded.spec.sources["up"], loaded, {"up": plain})
    from_git = pin_source("up", loaded.spec.sources["up"], loaded, {"up": repo})
    assert from_plain == from_git  # a clean export hashes like the commit itself
    (plain / "ops" / "kernel.cu").write_text("// changed\n")
    with pytest.raises(CheckFailed):
        fetch_source(from_git, tmp_path / "cache", overrides={"up": plain})


def test_rewritten_history_is_an_error(tmp_path: Path, repo: Path) -> None:
    loaded = load_spec(_spec(tmp_path, "main"))
    pinned = pin_source("up", loaded.spec.sources["up"], loaded, {"up": repo})
    (repo / "setup.py").write_text("print('rewritten')\n")
    git(repo, "commit", "-q", "-a", "--amend", "-m", "one, rewritten")
    git(repo, "tag", "-d", "v1")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    with pytest.raises(CheckFailed, match="history rewritten"):
        fetch_source(pinned, tmp_path / "cache", overrides={"up": repo})


def test_moved_tag_is_an_error(tmp_path: Path, repo: Path) -> None:
    loaded = load_spec(_spec(tmp_path, "v1"))
    pinned = pin_source("up", loaded.spec.sources["up"], loaded, {"up": repo})
    (repo / "setup.py").write_text("print('two')\n")
    git(repo, "commit", "-q", "-a", "-m", "two")
    git(repo, "tag", "-f", "v1")
    with pytest.raises(CheckFailed, match="'v1' moved"):
        fetch_source(pinned, tmp_path / "cache", overrides={"up": repo})


def test_unreachable_url_names_source_and_suggests_override(tmp_path: Path) -> None:
    loaded = load_spec(_spec(tmp_path, "v1"))
    with pytest.raises(SourceUnreachable) as info:
        pin_sources(loaded)
    assert info.value.exit_code == 1
    assert "source 'up'" in info.value.message
    assert info.value.hint is not None and "--source up=PATH" in info.value.hint
    assert "`make demo`" in info.value.hint


def test_env_prefetch_takes_source_overrides(tmp_path: Path, repo: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`envbuild env --source NAME=PATH`: a pinned git source the machine cannot reach is
    taken from a local clone (verified against the pin); an unknown NAME is bad input."""
    import builder.env.stages as stages
    import builder.opbuild.plan as plan
    from builder.errors import UsageError as Usage

    loaded = load_spec(_spec(tmp_path, "v1", "ops:\n  - {name: k, source: up, path: ops}\n"))
    pinned = pin_source("up", loaded.spec.sources["up"], loaded, {"up": repo})
    monkeypatch.setattr(plan, "locked_pins", lambda lockfile: {"up": pinned})
    monkeypatch.setenv("ENVBUILD_HOME", str(tmp_path / "home"))

    class _Res:
        ops = loaded.spec.ops

    def ctx(*sources: str) -> stages.Context:
        c = stages.Context(stages.EnvRequest(spec=loaded.path, sources=sources), loaded,
                           None, "cpu")
        c.resolution = _Res()  # type: ignore[assignment]
        c.lockfile = tmp_path / "unread.conda-lock.yml"  # its pins: locked_pins above
        return c

    with pytest.raises(SourceUnreachable):  # example.invalid: no network needed to fail
        stages._prefetch_sources(ctx())
    stages._prefetch_sources(ctx(f"up={repo}"))
    cached = list((tmp_path / "home" / "sources").glob("up-*"))
    assert [(c / "ops" / "kernel.cu").read_text() for c in cached] == ["__global__ void k() {}\n"]
    with pytest.raises(Usage, match="unknown source"):
        stages._prefetch_sources(ctx(f"nope={repo}"))


def test_unknown_rev_points_at_the_spec_line(tmp_path: Path, repo: Path) -> None:
    path = _spec(tmp_path, "no-such-tag")
    loaded = load_spec(path)
    with pytest.raises(UsageError, match=f"{path}:5"):
        pin_source("up", loaded.spec.sources["up"], loaded, {"up": repo})


def test_path_source_hash_ignores_build_output(tmp_path: Path) -> None:
    checkout = tmp_path / "mine"
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "a.py").write_text("x = 1\n")
    path = tmp_path / "envspecs" / "p.yaml"
    path.parent.mkdir()
    path.write_text('name: p\npython: "3.8"\ntorch: "1.13.1"\n'
                    'sources:\n  mine: {path: "../mine"}\n')
    loaded = load_spec(path)
    first = pin_source("mine", loaded.spec.sources["mine"], loaded)
    (checkout / "build").mkdir()
    (checkout / "build" / "junk.o").write_text("junk")
    assert pin_source("mine", loaded.spec.sources["mine"], loaded) == first
    dest = fetch_source(first, tmp_path / "cache", spec_dir=path.parent)
    assert (dest / "src" / "a.py").exists() and not (dest / "build").exists()
    (checkout / "src" / "a.py").write_text("x = 2\n")
    assert pin_source("mine", loaded.spec.sources["mine"], loaded).sha256 != first.sha256


def test_source_override_parsing(tmp_path: Path) -> None:
    assert parse_source_overrides([f"a={tmp_path}"]) == {"a": tmp_path.resolve()}
    with pytest.raises(UsageError):
        parse_source_overrides(["nope"])
