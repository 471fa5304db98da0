"""``install --channel NAME=URL``, ``ENVBUILD_CHANNEL_ALIAS`` and ``--offline``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.errors import CheckFailed, EnvbuildError, UsageError
from builder.install import InstallRequest, install
from builder.install.mirrors import Mirrors, named_only, parse_mirrors
from builder.install.plan import load_plan
from tests.helpers import run_cli

GONE = "file:///nonexistent-envbuild-channel/team"


def _moved(local: LocalChannel, tmp_path: Path, new_channel: str) -> Path:
    """The channel's lockfile as if its packages had been locked from ``new_channel``."""
    lockfile = write_channel_lockfile(local, tmp_path / "team.conda-lock.yml")
    text = lockfile.read_text()
    old = local.channel.resolve().as_uri()
    assert old in text
    lockfile.write_text(text.replace(old, new_channel))
    return lockfile


def test_mirror_pairs_and_alias() -> None:
    m = parse_mirrors(["conda-forge=https://m.example/cf", "https://x.example/a=file:///b"],
                      {"ENVBUILD_CHANNEL_ALIAS": "https://proxy.example/conda/"})
    assert m.url_for("https://conda.anaconda.org/conda-forge/linux-64/a.conda") == \
        "https://m.example/cf/linux-64/a.conda"
    assert m.url_for("https://x.example/a/noarch/b.conda") == "file:///b/noarch/b.conda"
    assert m.url_for("https://conda.anaconda.org/nvidia/label/cuda-11.7.1/linux-64/c.conda") \
        == "https://proxy.example/conda/nvidia/label/cuda-11.7.1/linux-64/c.conda"
    assert m.url_for("https://elsewhere.example/ch/linux-64/d.conda") == \
        "https://elsewhere.example/ch/linux-64/d.conda"
    assert Mirrors().url_for("file:///a/b") == "file:///a/b"
    with pytest.raises(UsageError, match="install needs NAME=URL"):
        parse_mirrors(["https://m.example/cf"], {})
    assert named_only(["https://m.example/cf", "pytorch=https://m.example/pt"]) == \
        ("pytorch=https://m.example/pt",)


def test_unreachable_channel_error_names_the_mirror_option_and_the_demo(
        local: LocalChannel, tmp_path: Path) -> None:
    lockfile = _moved(local, tmp_path, GONE)
    with pytest.raises(EnvbuildError) as info:
        install(InstallRequest(lockfile=lockfile, prefix=tmp_path / "p"))
    assert "could not download" in info.value.message
    assert info.value.hint is not None
    for words in ("--channel NAME=URL", "ENVBUILD_CHANNEL_ALIAS", "make demo", "--offline"):
        assert words in info.value.hint
    assert not (tmp_path / "p").exists()


def test_install_from_a_named_mirror(local: LocalChannel, tmp_path: Path) -> None:
    lockfile = _moved(local, tmp_path, GONE)
    mirror = tmp_path / "mirror"
    shutil.copytree(local.channel, mirror)
    out = run_cli("install", str(lockfile), "--prefix", str(tmp_path / "p"),
                  "--channel", f"{GONE}={mirror}", "--json")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "p" / "bin" / "python").exists()
    # the install key names the locked URLs: the mirror does not change it
    assert load_plan(lockfile).install_key in out.stdout


def test_install_through_the_team_channel_alias(local: LocalChannel, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    lockfile = _moved(local, tmp_path, "https://conda.anaconda.org/team-channel")
    alias = tmp_path / "proxy"
    shutil.copytree(local.channel, alias / "team-channel")
    monkeypatch.setenv("ENVBUILD_CHANNEL_ALIAS", alias.as_uri())
    result = install(InstallRequest(lockfile=lockfile, prefix=tmp_path / "p"))
    assert result.action == "installed"


def test_offline_names_what_is_missing_then_uses_the_cache(local: LocalChannel,
                                                           tmp_path: Path) -> None:
    lockfile = write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")
    with pytest.raises(CheckFailed) as info:
        install(InstallRequest(lockfile=lockfile, prefix=tmp_path / "a", offline=True))
    plan = load_plan(lockfile)
    assert f"{len(plan.conda)} of {len(plan.conda)} conda packages" in info.value.message
    assert all(f"{r.name}-{r.version}-{r.build}" in info.value.message for r in plan.conda)
    assert not (tmp_path / "a").exists()
    install(InstallRequest(lockfile=lockfile, prefix=tmp_path / "a"))  # fills the cache
    again = install(InstallRequest(lockfile=lockfile, prefix=tmp_path / "b", offline=True))
    assert again.action == "installed"


def test_lock_reads_the_same_channel_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.lock.channels import plan_channels

    assert plan_channels(["conda-forge"]).entries[0].url == \
        "https://conda.anaconda.org/conda-forge"
    monkeypatch.setenv("ENVBUILD_CHANNEL_ALIAS", "https://proxy.example/conda/")
    entry = plan_channels(["conda-forge"]).entries[0]
    assert entry.fetch_url == entry.url == "https://proxy.example/conda/conda-forge"
