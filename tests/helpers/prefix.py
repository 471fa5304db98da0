"""Throwaway prefixes layered on the project's ``.venv`` and what the tests ask of them.

:func:`layered_venv` is the one way tests and benches make a prefix that sees torch
without installing it: a fresh venv (no pip) whose own site dir lists other site dirs in
a ``.pth`` file, so whatever a build installs lands in the new prefix and never in
``.venv`` itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.helpers import REPO

VENV = REPO / ".venv"
LAYER_PTH = "_envbuild_layer.pth"


def site_packages(prefix: Path) -> Path:
    """``prefix``'s own ``lib/pythonX.Y/site-packages`` (a venv made by this python)."""
    return next(prefix.glob("lib/python*/site-packages"))


def layered_venv(dest: Path, *, base: Path = VENV, before: Sequence[Path] = ()) -> Path:
    """A fresh venv at ``dest`` whose site dir layers ``before`` (site dirs, in order) and
    then ``base``'s site-packages (default: the project's ``.venv``, where torch is)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    layers = [*before, site_packages(base)]
    (site_packages(dest) / LAYER_PTH).write_text("".join(f"{p}\n" for p in layers))
    return dest


def compile_skip_reason() -> str | None:
    """None when a real nvcc compile against ``.venv``'s torch can run, else why not."""
    from builder.opbuild.toolchain import prefix_facts

    if not (VENV / "bin" / "python").exists():
        return "no .venv"
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        return "no CUDA toolkit (nvcc) on this machine"
    if not prefix_facts(VENV).torch_cuda:
        return "torch in .venv is missing or CPU-only (make test-deps)"
    return None


def demo_env_works(prefix: Path) -> bool:
    """The demo env's own python imports the demo package and is the prefix's python."""
    out = subprocess.run([str(prefix / "bin" / "python"), "-c",
                          "import envbuild_demo_greeting, sys; print(sys.prefix)"],
                         capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == str(prefix)


def generation_leftovers(prefix: Path) -> list[str]:
    """What an install left in the generations dir besides the generations and the lock."""
    from builder.install.generations import Generations

    return sorted(p.name for p in Generations(prefix).root.iterdir()
                  if not p.name.isdigit() and p.name != ".lock")
