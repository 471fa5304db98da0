"""Fault injection points for the reliability tests (inert unless asked for).

``ENVBUILD_FAULT=POINT:KIND[,POINT:KIND...]`` makes :func:`point` fail at the
named place of an install, read at call time.  Kinds: ``enospc`` (an
``OSError`` as from a full disk), ``interrupt`` (Ctrl-C), ``kill`` (SIGKILL to
this process, as ``kill -9``).  Points: ``fetch``, ``conda``, ``pip``,
``activation``, ``switch``.
"""

from __future__ import annotations

import errno
import os
import signal

ENV_VAR = "ENVBUILD_FAULT"


def point(name: str) -> None:
    """Fail here if ``ENVBUILD_FAULT`` asks for it; otherwise do nothing."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    for item in spec.split(","):
        where, _, kind = item.partition(":")
        if where.strip() != name:
            continue
        kind = kind.strip() or "enospc"
        if kind == "enospc":
            raise OSError(errno.ENOSPC, f"No space left on device (injected at {name})")
        if kind == "interrupt":
            raise KeyboardInterrupt
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
