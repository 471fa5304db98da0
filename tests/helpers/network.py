"""The environment that keeps the processes a test starts off the network.

The in-process guard (a patched ``socket.connect``, in conftest) cannot reach uv, pip, git,
rattler's own sockets or an ``envbuild`` subprocess; this environment does: every proxy
variable names a closed loopback port, loopback itself is exempt (the local channels and
servers tests start), pip uses no index (``--find-links`` still works), and git may only
use ``file`` transports.
"""

from __future__ import annotations

import os
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

# nothing listens on the discard port: a request through this "proxy" is refused at once
CLOSED_PROXY = "http://127.0.0.1:9"
LOOPBACK = "localhost,127.0.0.1,::1"
OFFLINE_ENV: dict[str, str] = {
    **{name: CLOSED_PROXY for name in ("http_proxy", "https_proxy", "HTTP_PROXY",
                                       "HTTPS_PROXY", "ALL_PROXY", "all_proxy")},
    "no_proxy": LOOPBACK, "NO_PROXY": LOOPBACK,
    "PIP_NO_INDEX": "1",
    "GIT_ALLOW_PROTOCOL": "file",
}


def offline_env(monkeypatch: pytest.MonkeyPatch, *, network: bool) -> None:
    """Set :data:`OFFLINE_ENV` for a test, or (``network``) make sure none of it is set."""
    for name, value in OFFLINE_ENV.items():
        if not network:
            monkeypatch.setenv(name, value)
        elif os.environ.get(name) == value:
            monkeypatch.delenv(name)
    # urlopen's shared opener keeps the proxies it saw first: let this test's be read
    urllib.request.install_opener(None)  # type: ignore[arg-type]
