"""One line per stage on stderr, with its time: ``env``, ``lock``, ``install``, ``build``.

On a terminal the running stage shows as a rich spinner and each finished stage as a
``✓ lock conda 1.23s`` line; otherwise (CI logs, pipes) each finished stage is one
plain line, ``envbuild lock: conda done in 1.23s``.  ``envbuild -q`` (``ENVBUILD_QUIET``)
silences both; ``NO_COLOR`` turns the colour off.  Stages nest (``env``'s lock stage runs
``lock``'s own stages): only the outermost shows a spinner.  Everything is decided when a
stage starts, never at import time.

Other live displays (the download bar) call :func:`paused` so two never overlap.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

_state: dict[str, Any] = {"console": None, "live": None}


def enabled() -> bool:
    """False under ``envbuild -q``."""
    return not os.environ.get("ENVBUILD_QUIET")


def _tty() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def _console() -> Any:
    if _state["console"] is None or _state["console"].file is not sys.stderr:
        from rich.console import Console

        _state["console"] = Console(stderr=True, highlight=False)
    return _state["console"]


@contextlib.contextmanager
def stage(command: str, name: str) -> Iterator[None]:
    """Time one stage of ``command`` and report it when it ends (failed ones too)."""
    if not enabled():
        yield
        return
    start = time.monotonic()
    status = None
    if _tty() and _state["live"] is None:
        status = _console().status(f"envbuild {command}: {name} ...")
        status.start()
        _state["live"] = status
    ok = False
    try:
        yield
        ok = True
    finally:
        if status is not None:
            status.stop()
            _state["live"] = None
        line(command, name, time.monotonic() - start, ok=ok)


def line(command: str, name: str, seconds: float, *, ok: bool = True, detail: str = "") -> None:
    """Print one finished-stage line (also for stages timed elsewhere)."""
    if not enabled():
        return
    extra = f"  {detail}" if detail else ""
    if _tty():
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        _console().print(f"{mark} {command} {name:<12} {seconds:7.2f}s{extra}",
                         markup=True, highlight=False)
        return
    state = "done" if ok else "failed"
    print(f"envbuild {command}: {name} {state} in {seconds:.2f}s{extra}", file=sys.stderr,
          flush=True)


def note(command: str, text: str) -> None:
    """A progress note that is not a stage (a download finished, a compile started)."""
    if not enabled():
        return
    if _tty():
        _console().print(f"  {command}: {text}", markup=False, highlight=False)
    else:
        print(f"envbuild {command}: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Stop the spinner while another live display (a download bar) runs."""
    live = _state["live"]
    if live is None:
        yield
        return
    live.stop()
    try:
        yield
    finally:
        live.start()
