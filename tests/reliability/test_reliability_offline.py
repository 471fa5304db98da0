"""Re-install from the cache with no network at all (``unshare -n``: not even loopback).

The lockfile's URLs are remote (``http://127.0.0.1:PORT/...``, served by a server the test
starts and then stops).  What the caches key on: conda archives by sha256 + file name
(``pkgs/archives/<sha256>/<file>``, so the URL does not matter once verified); the pip
layer's wheels by URL in uv's cache (``pkgs/uv``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from tests.helpers.prefix import demo_env_works
from tests.helpers.reliability import record, run_to_end, serve_directory, unshare_net_reason

pytestmark = pytest.mark.reliability


def test_reinstall_from_cache_without_network(local: LocalChannel,
                                              tmp_path: Path) -> None:
    reason = unshare_net_reason()
    if reason:
        pytest.skip(reason)
    www = tmp_path / "www"
    shutil.copytree(local.channel, www / "channel")
    shutil.copytree(local.wheelhouse, www / "wheels")
    served = LocalChannel(channel=www / "channel", wheelhouse=www / "wheels",
                          python_version=local.python_version)
    file_lock = write_channel_lockfile(served, tmp_path / "file.conda-lock.yml")
    logs = tmp_path / "logs"
    with serve_directory(www) as server:
        lockfile = tmp_path / "demo.conda-lock.yml"
        lockfile.write_text(file_lock.read_text().replace(www.as_uri(), server.url))
        assert "file://" not in lockfile.read_text()
        rc, _, err, _ = run_to_end(["install", str(lockfile), "--prefix",
                                    str(tmp_path / "warm")], logs)
        assert rc == 0, err
        fetched = [p for p, _ in server.requests]
    assert any(p.endswith(".conda") for p in fetched) and any(p.endswith(".whl") for p in fetched)
    # the server is gone; in a new network namespace nothing at all is reachable
    new = tmp_path / "offline"
    rc, out, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(new)], logs,
                                 prefix_cmd=("unshare", "-n"))
    assert rc == 0, err
    assert demo_env_works(new)
    # control: the same command with an empty cache fails (the network really is cut)
    rc2, _, err2, _ = run_to_end(["install", str(lockfile), "--prefix", str(tmp_path / "cold")],
                                 logs, prefix_cmd=("unshare", "-n"),
                                 env={"ENVBUILD_HOME": str(tmp_path / "empty-home")})
    assert rc2 == 1 and "could not download" in err2, err2
    assert "Traceback" not in err2
    record("re-install from cache with no network (unshare -n)", trials=1,
           offline_reinstall_ok="1/1", empty_cache_control_refused="1/1",
           requests_while_warm=len(fetched))


EXIT_TRIALS = 50  # per command


def test_no_abort_at_exit_after_a_network_error(tmp_path: Path) -> None:
    """``lock`` and ``env`` with no network at all (rattler cannot fetch repodata): every run
    prints the error and exits 1 as DESIGN.md says, never ``Fatal Python error:
    PyGILState_Release`` (134) or a segfault (139) from rattler's threads at exit."""
    reason = unshare_net_reason()
    if reason:
        pytest.skip(reason)
    spec = tmp_path / "net.yaml"
    spec.write_text('name: net\npython: "3.11"\ntorch: "2.4.1"\ntorch_from: pypi\n'
                    "torchvision: false\nconda: [numpy]\n")
    commands = {
        "lock": ["lock", str(spec), "-o", str(tmp_path / "net.conda-lock.yml")],
        "env": ["env", str(spec), "--prefix", str(tmp_path / "p"),
                "--lockfile", str(tmp_path / "env.conda-lock.yml")],
    }
    codes: dict[str, list[int]] = {name: [] for name in commands}
    for name, args in commands.items():
        for _ in range(EXIT_TRIALS):
            rc, _, err, _ = run_to_end(args, tmp_path / "logs", prefix_cmd=("unshare", "-n"),
                                       timeout=120)
            codes[name].append(rc)
            assert "Fatal Python error" not in err and "Traceback" not in err, err
            assert rc == 1 and "cannot read conda channel repodata" in err, (name, rc, err)
    assert not (tmp_path / "p").exists() and not (tmp_path / "p.envbuild-gens").exists()
    assert not list(tmp_path.glob("*.conda-lock.yml")) and not list(tmp_path.glob(".*.tmp"))
    record("offline exit codes (unshare -n, rattler network error)", **{
        f"{name}_exit_1": f"{rcs.count(1)}/{len(rcs)}" for name, rcs in codes.items()})
