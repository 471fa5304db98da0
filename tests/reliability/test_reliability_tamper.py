"""Tampered inputs are refused through the real CLI, and nothing changes.

* a conda package in the channel whose bytes changed after locking;
* a conda package in the shared package cache whose bytes changed after it was verified;
* a wheel whose bytes changed after locking (pip record sha256 mismatch);
* a source tree in the sources cache changed after it was fetched and verified
  (``envbuild build`` of a git source pinned to a commit).

Each: exit non-zero, a clear message, no traceback, and the prefix (symlink + every
generation), the op store and the package cache unchanged (tree digests before/after).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.demo.condapkg import PackageMeta, write_conda
from builder.demo.localchannel import TOOL_PLACEHOLDER, LocalChannel, write_channel_lockfile
from tests.helpers.git import git
from tests.helpers.prefix import demo_env_works, layered_venv
from tests.helpers.reliability import (
    bad_cached_archives,
    op_variant,
    prefix_state,
    record,
    run_to_end,
    tree_state,
    write_cheap_op,
)

pytestmark = pytest.mark.reliability


@pytest.fixture
def channel_copy(local: LocalChannel, tmp_path: Path) -> LocalChannel:
    """A private copy of the local channel and wheelhouse (the tests change its files)."""
    copy = LocalChannel(channel=tmp_path / "chan", wheelhouse=tmp_path / "wheels",
                        python_version=local.python_version)
    shutil.copytree(local.channel, copy.channel)
    shutil.copytree(local.wheelhouse, copy.wheelhouse)
    return copy


def _evil_tool(out_dir: Path, work: Path) -> Path:
    """A package with the demo tool's exact name and file name, but other content."""
    script = work / "bin" / "envbuild-demo-hello"
    script.parent.mkdir(parents=True)
    script.write_text(f"#!{TOOL_PLACEHOLDER}/bin/python3\nprint('TAMPERED')\n")
    script.chmod(0o755)
    meta = PackageMeta(name="envbuild-demo-tool", version="1.0", build="0", subdir="noarch",
                       noarch="generic", depends=("python >=3.8",))
    return write_conda(work, meta, out_dir, placeholder=TOOL_PLACEHOLDER)


def _tool_says(prefix: Path) -> str:
    out = subprocess.run([str(prefix / "bin" / "envbuild-demo-hello")], capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"})
    return out.stdout.strip()


def _installed(channel: LocalChannel, tmp_path: Path) -> tuple[Path, Path]:
    lockfile = write_channel_lockfile(channel, tmp_path / "demo.conda-lock.yml")
    prefix = tmp_path / "env"
    rc, _, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(prefix)],
                               tmp_path / "logs")
    assert rc == 0, err
    assert _tool_says(prefix) == f"hello from {prefix}"
    return lockfile, prefix


def _refused(rc: int, err: str, *words: str) -> None:
    assert rc == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    low = err.lower()
    assert all(w in low for w in words), err


def test_conda_package_changed_in_channel(channel_copy: LocalChannel, tmp_path: Path) -> None:
    lockfile, prefix = _installed(channel_copy, tmp_path)
    real = next((channel_copy.channel / "noarch").glob("envbuild-demo-tool-*.conda"))
    evil = _evil_tool(tmp_path / "evil", tmp_path / "evil-stage")
    shutil.copy(evil, real)  # same URL, other bytes
    before = prefix_state(prefix)
    fresh = tmp_path / "fresh-home"  # nothing cached: the archive must be downloaded
    rc, _, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(prefix), "--force"],
                               tmp_path / "logs", env={"ENVBUILD_HOME": str(fresh)})
    _refused(rc, err, "hash mismatch", real.name)
    assert prefix_state(prefix) == before
    assert _tool_says(prefix) == f"hello from {prefix}" and demo_env_works(prefix)
    assert bad_cached_archives(fresh / "pkgs") == []
    assert not list((fresh / "pkgs" / "archives").glob(f"*/{real.name}")), \
        "the unverified archive reached the package cache"
    record("tampered conda package in the channel", trials=1, refused="1/1",
           prefix_unchanged="1/1", cache_clean="1/1")


def test_conda_package_changed_in_cache(channel_copy: LocalChannel, tmp_path: Path) -> None:
    """The cache is shared by every prefix of a user (or a team): bytes changed there after
    verification must not reach a new prefix."""
    lockfile, prefix = _installed(channel_copy, tmp_path)
    cache = Path(os.environ["ENVBUILD_HOME"]) / "pkgs"
    cached = next((cache / "archives").glob("*/envbuild-demo-tool-*.conda"))
    evil = _evil_tool(tmp_path / "evil", tmp_path / "evil-stage")
    cached.chmod(0o644)
    shutil.copy(evil, cached)
    for extracted in (cache / "extracted").glob("envbuild-demo-tool-*"):
        # as after a cache clean-up of extracted trees: the archive is all there is
        shutil.rmtree(extracted) if extracted.is_dir() else extracted.unlink()
    new_prefix = tmp_path / "env2"
    rc, _, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(new_prefix)],
                               tmp_path / "logs")
    says = _tool_says(new_prefix) if rc == 0 else "(not installed)"
    record("tampered conda package in the package cache", trials=1,
           refused=f"{int(rc != 0)}/1", installed_tool_says=says)
    if rc == 0:
        assert says == f"hello from {new_prefix}", (
            "a cached archive whose bytes no longer match the lockfile's sha256 was "
            f"installed: the new prefix's tool says {says!r}")
    else:
        _refused(rc, err, "hash")
        assert not new_prefix.exists()
    # refused, and the changed copy is gone: the next run downloads the channel's bytes
    _refused(rc, err, "hash mismatch", cached.name, "package cache")
    assert not cached.exists() and bad_cached_archives(cache) == []
    assert _tool_says(prefix) == f"hello from {prefix}" and demo_env_works(prefix)
    rc, _, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(new_prefix)],
                               tmp_path / "logs")
    assert rc == 0, err
    assert cached.is_file() and bad_cached_archives(cache) == []
    assert _tool_says(new_prefix) == f"hello from {new_prefix}"
    record("tampered conda package in the package cache, next run", trials=1,
           redownloaded_and_installed=f"{int(rc == 0)}/1")


def test_wheel_changed_after_locking(channel_copy: LocalChannel, tmp_path: Path) -> None:
    lockfile, prefix = _installed(channel_copy, tmp_path)
    wheel = next(channel_copy.wheelhouse.glob("*.whl"))
    import zipfile

    data = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            data[name] = zf.read(name)
    init = next(n for n in data if n.endswith("__init__.py"))
    data[init] = data[init].replace(b"hello from the pip layer", b"TAMPERED wheel")
    with zipfile.ZipFile(wheel, "w") as zf:  # RECORD left as it was: only the lock can tell
        for name, blob in data.items():
            zf.writestr(name, blob)
    before = prefix_state(prefix)
    fresh = tmp_path / "fresh-home"
    rc, _, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(prefix), "--force"],
                               tmp_path / "logs", env={"ENVBUILD_HOME": str(fresh)})
    _refused(rc, err, "hash")
    assert prefix_state(prefix) == before and demo_env_works(prefix)
    # and into a new prefix: nothing is created
    other = tmp_path / "env-new"
    rc, _, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(other)],
                               tmp_path / "logs", env={"ENVBUILD_HOME": str(fresh)})
    _refused(rc, err, "hash")
    assert not other.exists()
    record("tampered wheel (pip record sha256)", trials=2, refused="2/2", prefix_unchanged="2/2")


def test_source_tree_changed_in_cache(compile_ready: None, tmp_path: Path) -> None:
    """`envbuild build` of a git source pinned to a commit; the verified copy in the
    sources cache is then changed: the next build refuses, nothing is built or installed."""
    upstream = tmp_path / "upstream"
    write_cheap_op(upstream, 7)
    git(upstream, "init", "-q", "-b", "main")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "op")
    commit = git(upstream, "rev-parse", "HEAD")
    spec = tmp_path / "relop-git.yaml"
    spec.write_text("name: relop\npython: '3.11'\ntorch: '==2.14.1'\ntorch_from: pypi\n"
                    "cuda: {default: '13.0'}\nsources:\n"
                    f"  up: {{git: '{upstream.as_uri()}', rev: '{commit}'}}\n"
                    "ops:\n  - {name: envbuild_relop, source: up, path: op}\n")
    prefix = layered_venv(tmp_path / "prefix")
    # the git URL is a local repository, so the source is fetched, pinned and cached as
    # from a remote (a --source override would bypass the cache)
    args = ["build", str(spec), "--prefix", str(prefix), "--arch", "9.0"]
    rc, _, err, _ = run_to_end(args, tmp_path / "logs")
    assert rc == 0, err
    assert op_variant(prefix) == 7
    home = Path(os.environ["ENVBUILD_HOME"])
    cached = next((home / "sources").glob("up-*"))
    (cached / "op" / "src" / "mod.c").write_text(
        (cached / "op" / "src" / "mod.c").read_text().replace("FromLong(7)", "FromLong(666)"))
    before = (tree_state(prefix), tree_state(home / "store" / "ops"))
    rc, out, err, _ = run_to_end(args, tmp_path / "logs")
    _refused(rc, err, "does not match")
    assert "compile" not in out
    assert (tree_state(prefix), tree_state(home / "store" / "ops")) == before
    assert op_variant(prefix) == 7
    record("tampered source tree (sources cache, envbuild build)", trials=1, refused="1/1",
           prefix_and_store_unchanged="1/1")
