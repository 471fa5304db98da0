"""Shared test helpers: paths to real data, environment probes, CLI runner."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"
SNAPSHOT = SHARED / "channels-snapshot"
ENVSPECS = REPO / "envspecs"


@functools.lru_cache(maxsize=1)
def pypi_unreachable_reason() -> str | None:
    """None when PyPI answers, else why not (cached for the session)."""
    import urllib.request

    # a new opener: it reads this moment's proxy variables (urlopen's shared one keeps
    # those of whichever test used it first, perhaps under the offline environment)
    try:
        with urllib.request.build_opener().open("https://pypi.org/simple/pip/",
                                                timeout=5) as resp:
            resp.read(64)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return f"https://pypi.org unreachable ({type(exc).__name__}: {exc})"


@functools.lru_cache(maxsize=1)
def gpu_unavailable_reason() -> str | None:
    """None when nvidia-smi lists at least one GPU, else why not."""
    smi = os.environ.get("ENVBUILD_NVIDIA_SMI") or shutil.which("nvidia-smi")
    if not smi:
        return "no nvidia-smi on PATH (no NVIDIA driver on this machine)"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi failed: {exc}"
    if out.returncode != 0 or "GPU" not in out.stdout:
        return f"nvidia-smi lists no GPU ({(out.stderr or out.stdout).strip()[:200]})"
    return None


def snapshot_missing_reason() -> str | None:
    """None when ../shared/channels-snapshot exists beside the repository."""
    if (SNAPSHOT / "channels.json").exists():
        return None
    return f"channel snapshot not found at {SNAPSHOT}"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``envbuild`` as a user would: a real process, real exit code."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "builder", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=timeout,
    )
