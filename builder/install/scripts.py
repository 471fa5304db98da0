"""Console scripts the pip layer installs: pointed at the final prefix, then checked.

uv writes each script for the interpreter it was given, the one inside the generation
being built (``NAME.envbuild-gens/<n>.partial/bin/python3``).  A short plain path gets
a ``#!`` line; a path with spaces or one too long for the kernel's ``#!`` limit gets a
``/bin/sh`` trampoline whose second line execs the interpreter (quoted for the shell).
:func:`point_at_prefix` rewrites the generation part of that path in either form to the
final ``PREFIX`` (whatever quoting the path needed, the generation part needs none), and
:func:`check_scripts` refuses the generation when a script could not start: its
interpreter (resolved through the new generation) must exist and be executable, and a
``#!`` line must be one the kernel can run (no spaces, under 256 bytes).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from builder.errors import CheckFailed

HEADER_BYTES = 8192  # a script's first lines: the #! line and a trampoline's exec line
SHEBANG_MAX = 255  # Linux reads at most 256 bytes of a #! line (BINPRM_BUF_SIZE)


def bin_scripts(gen_dir: Path) -> set[str]:
    """Names of the regular files in ``gen_dir/bin`` (links excluded)."""
    bindir = gen_dir / "bin"
    if not bindir.is_dir():
        return set()
    return {p.name for p in bindir.iterdir() if p.is_file() and not p.is_symlink()}


def point_at_prefix(gen_dir: Path, final_prefix: Path, names: set[str]) -> set[str]:
    """Rewrite the scripts ``names`` in ``gen_dir/bin`` that name ``gen_dir`` to name
    ``final_prefix``; return the names of those changed."""
    tail = f"{gen_dir.parent.name}/{gen_dir.name}/".encode()  # NAME.envbuild-gens/<n>.partial/
    head = f"{final_prefix.name}/".encode()
    if not tail.startswith(head[:-1]):
        raise ValueError(f"{gen_dir} is not a generation of {final_prefix}")
    changed = set()
    for name in sorted(names):
        script = gen_dir / "bin" / name
        data = script.read_bytes()
        top = data[:HEADER_BYTES]
        if not top.startswith(b"#!") or tail not in top:
            continue
        cut = top.find(b"\n", top.find(b"\n") + 1) + 1 or len(top)  # the first two lines
        new = top[:cut].replace(tail, head) + data[cut:]
        tmp = script.with_name(f".{name}.tmp")
        tmp.write_bytes(new)
        os.chmod(tmp, script.stat().st_mode)
        os.replace(tmp, script)
        changed.add(name)
    return changed


def interpreter(script: Path) -> tuple[str, bool] | None:
    """(interpreter path, whether by a direct ``#!`` line) of a script, or None."""
    with open(script, "rb") as fh:
        top = fh.read(HEADER_BYTES)
    if not top.startswith(b"#!"):
        return None
    lines = top.split(b"\n")
    first = lines[0][2:].strip()
    if first == b"/bin/sh" and len(lines) > 1 and lines[1].startswith(b"'''exec'"):
        try:
            words = shlex.split(os.fsdecode(lines[1]))
        except ValueError:
            return ("<unparseable trampoline>", False)
        return (words[1] if len(words) > 1 else "", False)
    return (os.fsdecode(lines[0][2:].split()[0]) if first else "", True)


def check_scripts(gen_dir: Path, final_prefix: Path, names: set[str]) -> None:
    """A :class:`CheckFailed` naming every script in ``names`` that could not start."""
    problems = []
    for name in sorted(names):
        script = gen_dir / "bin" / name
        found = interpreter(script)
        if found is None:
            continue
        interp, direct = found
        problem = _launch_problem(interp, direct, gen_dir, final_prefix, script)
        if problem:
            problems.append(f"  bin/{name}: {problem}")
    if problems:
        raise CheckFailed(
            f"{len(problems)} console script(s) in {final_prefix} could not start:\n"
            + "\n".join(problems[:20]), hint="this is a bug in envbuild; please report it "
            "with the prefix path. The previous environment is unchanged")


def _launch_problem(interp: str, direct: bool, gen_dir: Path, final_prefix: Path,
                    script: Path) -> str | None:
    if direct:
        line = open(script, "rb").readline()  # noqa: SIM115 - closed when collected
        if len(line.rstrip(b"\n")) > SHEBANG_MAX:
            return f"its #! line is {len(line)} bytes (the kernel reads {SHEBANG_MAX + 1})"
    if not os.path.isabs(interp):
        return f"interpreter {interp!r} is not an absolute path"
    path = Path(interp)
    if path.is_relative_to(gen_dir.parent):
        return f"names the temporary generation directory ({interp})"
    if path.is_relative_to(final_prefix):
        path = gen_dir / path.relative_to(final_prefix)
    if not (path.is_file() and os.access(path, os.X_OK)):
        return f"interpreter {interp} does not exist or is not executable"
    return None
