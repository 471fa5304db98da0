"""Guards for the whole suite.

* Every test gets its own ``ENVBUILD_HOME`` and a fake ``HOME``: nothing is written to ``~``.
* Sockets to anything but loopback are refused unless the test is marked ``network``;
  ``network`` tests skip (with the reason) when PyPI cannot be reached.  The processes a
  test starts (uv, pip, git, rattler, envbuild itself) are kept off the network by the
  environment of ``tests/helpers/network.py`` (proxies on a closed loopback port, no pip
  index, git over ``file`` only); ``network`` tests get none of it.
* ``gpu`` tests skip with the reason when no CUDA GPU is visible.
* ``local``: the demo's local conda channel, built once per session (tests only read it;
  a test that changes a channel copies it first).
* ``compile_ready`` / ``layered_prefix``: real nvcc compiles against ``.venv``'s torch
  (SKIPPED with the reason without a toolkit or a CUDA torch), in one prefix layered on
  ``.venv`` per session; a test that needs a prefix of its own makes one with
  ``tests.helpers.prefix.layered_venv``.
* ``demo_project``: a project directory with the demo spec, its ops, a local channel and a
  filled wheelhouse (one per module; filling the wheelhouse needs PyPI).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import gpu_unavailable_reason, pypi_unreachable_reason
from tests.helpers.network import offline_env
from tests.helpers.prefix import compile_skip_reason, layered_venv

if TYPE_CHECKING:
    from builder.demo.localchannel import LocalChannel

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (
        host in {"localhost", "::1"} or host.startswith("127.") or self.family == socket.AF_UNIX
    ):
        return _real_connect(self, address)  # type: ignore[arg-type]
    if self.family == socket.AF_UNIX:
        return _real_connect(self, address)  # type: ignore[arg-type]
    raise OSError(f"network access blocked in tests (mark the test 'network'): {address!r}")


@pytest.fixture(autouse=True)
def _isolate(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ENVBUILD_HOME", str(home / ".cache" / "envbuild"))
    monkeypatch.delenv("ENVBUILD_STORE", raising=False)
    monkeypatch.delenv("ENVBUILD_NVIDIA_SMI", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    network = request.node.get_closest_marker("network") is not None
    offline_env(monkeypatch, network=network)
    if not network:
        monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("network") is not None:
        reason = pypi_unreachable_reason()
        if reason:
            pytest.skip(f"needs PyPI: {reason}")
    if item.get_closest_marker("gpu") is not None:
        reason = gpu_unavailable_reason()
        if reason:
            pytest.skip(f"needs a CUDA GPU: {reason}")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_op_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build store (``ENVBUILD_STORE``) for the tests that build the demo spec's op: the
    op's key does not depend on the prefix, so it is compiled once per session."""
    return tmp_path_factory.mktemp("demo-op-store")


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> LocalChannel:
    # imported here: several tests assert which builder modules a code path imports
    from builder.demo.localchannel import ensure_local_channel

    return ensure_local_channel(tmp_path_factory.mktemp("localchannel") / "lc")


@pytest.fixture(scope="session")
def compile_ready() -> None:
    """Skips (with the reason) unless a real nvcc compile against .venv's torch can run."""
    reason = compile_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def layered_prefix(compile_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's prefix for compile tests: a venv layered on .venv (torch), so op
    installs land here and never in .venv."""
    return layered_venv(tmp_path_factory.mktemp("prefix"))


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LocalChannel]:
    """(spec, channel): a copy of the demo spec and its ops in a new project directory, with
    a local channel and a wheelhouse filled for it (``pip download``: needs PyPI)."""
    import shutil

    from builder.demo.localchannel import ensure_local_channel
    from builder.demo.run import fill_wheelhouse
    from tests.helpers import ENVSPECS

    root = tmp_path_factory.mktemp("project")
    channel = ensure_local_channel(root / ".envbuild" / "demo")
    (root / "envspecs").mkdir()
    spec = root / "envspecs" / "demo.yaml"
    shutil.copy(ENVSPECS / "demo.yaml", spec)
    shutil.copytree(ENVSPECS / "demo-ops", root / "envspecs" / "demo-ops")
    fill_wheelhouse(channel.wheelhouse, spec)
    return spec, channel
