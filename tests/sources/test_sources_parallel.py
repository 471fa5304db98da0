"""Sources are pinned concurrently; sources sharing a git URL one after the other."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.sources.fetch import pin_source, pin_sources
from builder.spec.envspec import load_spec
from tests.helpers.git import git


def _repo(root: Path, text: str) -> str:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "a.py").write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    return git(root, "rev-parse", "HEAD")


def _spec(tmp_path: Path, sources: str) -> Path:
    path = tmp_path / "envspecs" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'name: s\npython: "3.8"\ntorch: "1.13.1"\nsources:\n{sources}')
    return path


def test_many_sources_pin_like_one_at_a_time(tmp_path: Path) -> None:
    one = _repo(tmp_path / "one", "print(1)\n")
    two = _repo(tmp_path / "two", "print(2)\n")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "x.py").write_text("x = 1\n")
    url1, url2 = (tmp_path / "one").as_uri(), (tmp_path / "two").as_uri()
    spec = _spec(tmp_path, f'  b: {{git: "{url1}", rev: "{one}"}}\n'
                           f'  a: {{git: "{url1}", rev: "{one}"}}\n'  # same repo as b
                           f'  c: {{git: "{url2}", rev: "{two}"}}\n'
                           f'  d: {{path: "../local"}}\n')
    pinned = pin_sources(load_spec(spec))
    assert [p.name for p in pinned] == ["a", "b", "c", "d"]
    assert pinned[0].commit == pinned[1].commit == one and pinned[2].commit == two
    assert pinned[0].sha256 == pinned[1].sha256 != pinned[2].sha256
    # the same answer as pinning each source alone, one after the other
    loaded = load_spec(spec)
    assert pinned == tuple(pin_source(n, loaded.spec.sources[n], loaded, {})
                           for n in ("a", "b", "c", "d"))


def test_an_unreachable_source_is_reported(tmp_path: Path) -> None:
    one = _repo(tmp_path / "one", "print(1)\n")
    spec = _spec(tmp_path, f'  ok: {{git: "{(tmp_path / "one").as_uri()}", rev: "{one}"}}\n'
                           f'  gone: {{git: "{(tmp_path / "nope").as_uri()}", rev: "{one}"}}\n')
    from builder.errors import EnvbuildError

    with pytest.raises(EnvbuildError, match="source 'gone'"):
        pin_sources(load_spec(spec))
