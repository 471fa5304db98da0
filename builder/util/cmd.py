"""Every subprocess goes through :func:`run`.

It echoes the quoted command (when asked), finds the executable (naming PATH
when it cannot), captures output, and raises :class:`CommandError` with the
command, return code and the tail of stderr.  Long logs (nvcc, uv) can be
written to a file whose path ends up in the error.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import CommandError, ExecutableNotFound

TAIL_LINES = 40


@dataclass(frozen=True)
class Completed:
    """The result of a finished command."""

    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str


def quote(cmd: Sequence[str | os.PathLike[str]]) -> str:
    """The command as a shell would need it typed."""
    return " ".join(shlex.quote(os.fspath(c)) for c in cmd)


def which(name: str, *, path: str | None = None, hint: str | None = None) -> str:
    """Absolute path of ``name`` or an error naming the PATH that was searched."""
    if os.sep in name:
        if os.access(name, os.X_OK):
            return name
        raise ExecutableNotFound(f"{name} is not an executable file", hint=hint)
    found = shutil.which(name, path=path)
    if found is None:
        searched = path if path is not None else os.environ.get("PATH", "")
        raise ExecutableNotFound(
            f"{name!r} not found on PATH ({searched or 'empty'})",
            hint=hint or f"install {name} or put its directory on PATH",
        )
    return found


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    echo: bool = False,
    log_path: Path | None = None,
    timeout: float | None = None,
    stdin: str | None = None,
    hint: str | None = None,
    path: str | None = None,
) -> Completed:
    """Run ``cmd`` and capture its output.

    ``env`` replaces the environment entirely when given (callers build it
    explicitly, so nothing leaks in by accident).  With ``log_path`` the combined
    output is also written there, and the error names the file.
    """
    argv = [os.fspath(c) for c in cmd]
    search_path = path if path is not None else (env or os.environ).get("PATH")
    argv[0] = which(argv[0], path=search_path)
    if echo or os.environ.get("ENVBUILD_VERBOSE"):  # -v (read per call, never at import)
        print(f"$ {quote(argv)}", file=sys.stderr)
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            input=stdin,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = _text(exc.stdout) + _text(exc.stderr)
        _write_log(log_path, argv, out)
        raise CommandError(
            argv, -1, tail(out) + f"\n(timed out after {timeout}s)",
            hint=hint, log_path=str(log_path) if log_path else None,
        ) from None
    if log_path is not None:
        _write_log(log_path, argv, proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(
            argv,
            proc.returncode,
            tail(proc.stderr or proc.stdout),
            hint=hint,
            log_path=str(log_path) if log_path else None,
        )
    return Completed(argv, proc.returncode, proc.stdout, proc.stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def _write_log(log_path: Path | None, argv: list[str], output: str) -> None:
    if log_path is None:
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(f"$ {quote(argv)}\n{output}\n")
