"""builder.demo.localchannel: a channel of real conda packages with a relocatable python."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, ensure_local_channel, write_channel_lockfile
from builder.install import InstallRequest, install


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> LocalChannel:
    return ensure_local_channel(tmp_path_factory.mktemp("localchannel") / "lc")


def test_channel_is_indexed_with_hashes(local: LocalChannel) -> None:
    repodata = json.loads((local.channel / "linux-64" / "repodata.json").read_text())
    names = {r["name"] for r in repodata["packages.conda"].values()}
    assert {"python", "pip"} <= names
    assert all(len(r["sha256"]) == 64 for r in repodata["packages.conda"].values())


def test_second_call_reuses_the_channel(local: LocalChannel) -> None:
    before = (local.channel / "linux-64" / "repodata.json").stat().st_mtime_ns
    again = ensure_local_channel(local.channel.parent)
    assert again == local
    assert (local.channel / "linux-64" / "repodata.json").stat().st_mtime_ns == before


def test_packaged_python_runs_from_the_prefix_with_its_own_libpython(
        local: LocalChannel, tmp_path: Path) -> None:
    lockfile = write_channel_lockfile(local, tmp_path / "l.conda-lock.yml")
    prefix = tmp_path / "env"
    install(InstallRequest(lockfile=lockfile, prefix=prefix))
    code = ("import sys, ssl, sqlite3, json, pip; "
            "maps = open('/proc/self/maps').read(); "
            "print(sys.prefix); print([l.split()[-1] for l in maps.splitlines() "
            "if 'libpython' in l][0])")
    out = subprocess.run([str(prefix / "bin" / "python3"), "-c", code], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout.split()
    assert out[0] == str(prefix)
    assert out[1].startswith(str(prefix.resolve()))  # not the host interpreter's libpython


def test_installed_python_starts_from_shipped_bytecode(local: LocalChannel, tmp_path: Path) -> None:
    lockfile = write_channel_lockfile(local, tmp_path / "l.conda-lock.yml")
    prefix = tmp_path / "env"
    install(InstallRequest(lockfile=lockfile, prefix=prefix))
    lib = next((prefix / "lib").glob("python3.*"))
    assert (lib / "json" / "__pycache__").is_dir()
    # a module that embeds the prefix is rewritten at install: it ships no bytecode
    sysconfigdata = next(lib.glob("_sysconfigdata_*.py"))
    assert not list((lib / "__pycache__").glob(sysconfigdata.stem + ".*.pyc"))
    proc = subprocess.run([str(prefix / "bin" / "python3"), "-v", "-B", "-c", "import json"],
                          capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"})
    used = [ln for ln in proc.stderr.splitlines() if ln.startswith("# code object from")]
    assert any("json/__pycache__/" in ln for ln in used), proc.stderr[-2000:]
    assert not any("json/__init__.py'" in ln for ln in used)  # not compiled from source
