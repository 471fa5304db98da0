"""The suite's network guard reaches the processes tests start, and spares loopback.

Each check runs in a child process started the way the tests start uv, pip, git and
envbuild: with the test's own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.network import OFFLINE_ENV, offline_env
from tests.helpers.reliability import serve_directory

# a documentation address (TEST-NET-3): never a real host, so nothing is reached even if
# the guard were missing; the test asserts how it fails, not that it fails
FAR = "http://203.0.113.7/simple/"
FETCH = ("import sys, urllib.request\n"
         "try:\n"
         "    urllib.request.urlopen(sys.argv[1], timeout=10).read()\n"
         "except Exception as exc:\n"
         "    print(type(exc).__name__, exc); sys.exit(3)\n"
         "print('fetched')\n")


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_a_child_process_goes_through_the_closed_proxy() -> None:
    out = _child(sys.executable, "-c", FETCH, FAR)
    assert out.returncode == 3, out.stdout + out.stderr
    # refused by the proxy on the loopback discard port, at once: not a timeout
    assert "Connection refused" in out.stdout, out.stdout


def test_a_child_git_may_not_use_https() -> None:
    out = _child("git", "ls-remote", "https://example.invalid/x")
    assert out.returncode != 0
    assert "transport 'https' not allowed" in out.stderr, out.stderr


def test_a_child_pip_has_no_index(tmp_path: Path) -> None:
    out = _child(sys.executable, "-m", "pip", "download", "-vv", "--no-deps",
                 "--dest", str(tmp_path), "envbuild-no-such-package")
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "Ignoring indexes: https://pypi.org/simple" in text, text
    assert "Looking in indexes" not in text, text


def test_loopback_still_works_from_a_child(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello\n")
    with serve_directory(tmp_path) as served:
        for host in ("127.0.0.1", "localhost"):
            url = served.url.replace("127.0.0.1", host) + "/hello.txt"
            out = _child(sys.executable, "-c", FETCH, url)
            assert out.returncode == 0 and out.stdout.strip() == "fetched", out.stdout
    assert [path for path, _ in served.requests] == ["/hello.txt", "/hello.txt"]


def test_the_guard_is_set_here_and_lifted_for_network_tests(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert {k: os.environ.get(k) for k in OFFLINE_ENV} == OFFLINE_ENV
    offline_env(monkeypatch, network=True)  # what a test marked ``network`` gets
    assert not {k for k, v in OFFLINE_ENV.items() if os.environ.get(k) == v}


@pytest.mark.network
def test_a_network_test_gets_none_of_the_guard() -> None:
    assert not {k for k, v in OFFLINE_ENV.items() if os.environ.get(k) == v}
