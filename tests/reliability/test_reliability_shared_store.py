"""A store shared by a team: two real Unix users in one group, umask 002 and 022.

Each member runs envbuild's store code as their own user (``runuser``), with their own
``ENVBUILD_HOME``, against one setgid store directory (``chgrp TEAM; chmod 2775``).
Checked: each reuses the other's builds and takes the other's key locks; entries are
published read-only; a member who replaces another's entry (with a consistent marker)
gets it refused, evicted and rebuilt by the other, never installed.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.reliability import record

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
GROUP = "envbuild-team"
USERS = ("envbuild-ta", "envbuild-tb")
SYS_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create two Unix users"
    if not (shutil.which("useradd") and shutil.which("runuser")):
        return "useradd/runuser not available"
    if not SYS_PYTHON.exists():
        return f"{SYS_PYTHON} (a python other users can run) not available"
    return None


@pytest.fixture(scope="module")
def team() -> Iterator[Path]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    made = []
    if not _exists(grp.getgrnam, GROUP):
        subprocess.run(["groupadd", GROUP], check=True)
    for user in USERS:
        if not _exists(pwd.getpwnam, user):
            subprocess.run(["useradd", "-M", "-N", "-g", GROUP, "-s", "/bin/sh", user],
                           check=True)
            made.append(user)
    base = Path(tempfile.mkdtemp(prefix="envbuild-team-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
        for user in made:
            subprocess.run(["userdel", user], check=False)
        if made:
            subprocess.run(["groupdel", GROUP], check=False)


def _exists(getter: object, name: str) -> bool:
    try:
        getter(name)  # type: ignore[operator]
    except KeyError:
        return False
    return True


def _site_packages() -> str:
    return next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())


def _as(user: str, umask: str, base: Path, *args: str) -> dict[str, object]:
    home = base / f"home-{user}"
    if not home.exists():
        home.mkdir()
        shutil.chown(home, user, GROUP)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "ENVBUILD_HOME": str(home / "eb"),
           "PYTHONPATH": f"{REPO}:{_site_packages()}", "PYTHONDONTWRITEBYTECODE": "1"}
    script = f'umask {umask}; exec "$0" -m tests.helpers.store_member "$@"'
    out = subprocess.run(["runuser", "-u", user, "--", "env", "-i",
                          *[f"{k}={v}" for k, v in env.items()], "/bin/sh", "-c", script,
                          str(SYS_PYTHON), *args],
                         capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    assert "exception" not in result, (user, args, result, out.stderr)
    return result


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", ["002", "022"])
def test_two_members_share_one_store(team: Path, umask: str) -> None:
    a, b = USERS
    store = team / f"store-{umask}"
    store.mkdir()
    shutil.chown(store, group=GROUP)
    os.chmod(store, 0o2775)
    k1, k2, k3 = (f"{c}" * 64 for c in "123")
    s = str(store)

    got = _as(a, umask, team, s, k1, "get", "built by A")
    assert got["hit"] is False and got["wheel"] == "built by A"
    assert got["lock_mode"] == "0o664"
    entry = store / "ops" / k1
    assert _mode(entry) == 0o555 and _mode(next(entry.glob("*.whl"))) == 0o444
    for sub in ("ops", "locks", "tmp"):
        assert _mode(store / sub) == 0o2775, sub
        assert (store / sub).stat().st_gid == grp.getgrnam(GROUP).gr_gid

    # B reuses A's build, builds a key of its own, and A reuses that one
    assert _as(b, umask, team, s, k1, "get", "built by B") == {
        "hit": True, "wheel": "built by A", "log": [], "lock_mode": "0o664"}
    assert _as(b, umask, team, s, k2, "get", "B2")["hit"] is False
    assert _as(a, umask, team, s, k2, "get", "A2")["wheel"] == "B2"

    # A half-published entry of A's (killed before its marker): B rebuilds it
    _as(a, umask, team, s, k3, "get", "A3")
    os.chmod(store / "ops" / k3, 0o755)
    (store / "ops" / k3 / ".complete").unlink()
    shutil.chown(store / "ops" / k3, a, GROUP)
    rebuilt = _as(b, umask, team, s, k3, "get", "B3")
    assert rebuilt["hit"] is False and rebuilt["wheel"] == "B3"

    # B cannot write into A's entry; B replaces it whole: A refuses, evicts, rebuilds
    assert _as(b, umask, team, s, k1, "overwrite", "evil")["ok"] is False
    assert _as(b, umask, team, s, k1, "replace", "evil")["ok"] is True
    again = _as(a, umask, team, s, k1, "get", "built by A again")
    assert again["hit"] is False and again["wheel"] == "built by A again"
    assert "refusing stored build" in str(again["log"])
    record("shared store, two users", umask=umask, members=2, keys=3,
           cross_hits="2/2", cross_lock_and_rebuild="1/1", in_place_write_refused="1/1",
           replaced_entry_refused_and_rebuilt="1/1")
