"""When the PyPI layer must really ask PyPI: its input key and uv's cache freshness.

Three ways to a result, cheapest first (see :func:`builder.lock.pypi_layer.solve_pypi`):

1. **Unchanged inputs**: the previous lockfile records :func:`pypi_key` of the inputs
   it was locked from (``envbuild.pypi_key``).  When the key is the same and the
   file's package records are intact, its pip records are the result: uv is not run.
2. **uv's cache, offline**: ``uv pip compile --offline`` answers from the index pages
   uv cached.  The answer is taken only when every package in it was resolved online
   within the TTL (:data:`DEFAULT_TTL_S`, ``ENVBUILD_PYPI_TTL`` seconds), or after the
   ``exclude_newer`` cutoff (a page fetched after the cutoff already lists everything
   the cutoff lets through, so the answer is what an online run gives).
3. **Online**: uv asks the index; the packages it resolved are stamped fresh.

Key contract: ``payload_digest({"schema": KEY_SCHEMA, ...})`` over the requirements,
the constraints (conda-provided pins), the target python and manylinux level, every
index option (local ``find_links`` directories by their file names and sizes),
``exclude_newer`` and uv's version.  Previous pins are always handed to uv as
preferences, so a re-lock keeps them unless an input forces a change.

Stamps live in ``$ENVBUILD_HOME/pypi/fresh-<index key>.json`` (project -> unix time);
the index key covers the index options and ``UV_CACHE_DIR``.
"""

from __future__ import annotations

import json
import os
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder import paths
from builder.util.fs import atomic_write_text, ensure_cachedir_tag
from builder.util.hashing import payload_digest

if TYPE_CHECKING:
    from builder.lock.pypi_layer import PypiRequest

KEY_SCHEMA = 1
DEFAULT_TTL_S = 6 * 3600


def uv_version() -> str:
    """The version of the ``uv`` Python package (the binary it ships has the same)."""
    try:
        return metadata.version("uv")
    except metadata.PackageNotFoundError:
        return "unknown"


def _links_identity(links: tuple[str, ...]) -> list[Any]:
    out: list[Any] = []
    for link in links:
        root = Path(link)
        if "://" in link or not root.is_dir():
            out.append(link)
            continue
        files = sorted((p.name, p.stat().st_size) for p in root.iterdir() if p.is_file())
        out.append([link, files])
    return out


def index_payload(req: PypiRequest) -> dict[str, Any]:
    """Every index option of ``req`` (what decides which pages uv reads)."""
    return {"index_url": req.index_url, "extra_index_urls": list(req.extra_index_urls),
            "find_links": _links_identity(req.find_links), "no_index": req.no_index}


def pypi_key(req: PypiRequest) -> str:
    """Digest of every input of the PyPI layer (see the module docstring)."""
    cutoff = req.exclude_newer.isoformat() if req.exclude_newer is not None else None
    return payload_digest({
        "schema": KEY_SCHEMA, "requirements": list(req.requirements),
        "constraints": dict(sorted(req.provided.items())),
        "python_version": req.python_version, "manylinux_minor": req.manylinux_minor,
        "index": index_payload(req), "exclude_newer": cutoff, "uv": uv_version()})


def ttl_seconds() -> float:
    """``ENVBUILD_PYPI_TTL`` (seconds) or :data:`DEFAULT_TTL_S`; 0 disables the offline try."""
    raw = os.environ.get("ENVBUILD_PYPI_TTL", "")
    try:
        return max(0.0, float(raw)) if raw.strip() else float(DEFAULT_TTL_S)
    except ValueError:
        return float(DEFAULT_TTL_S)


def _stamp_path(req: PypiRequest) -> Path:
    key = payload_digest({"schema": KEY_SCHEMA, "index": index_payload(req),
                          "uv_cache_dir": os.environ.get("UV_CACHE_DIR", "")})
    return paths.home() / "pypi" / f"fresh-{key[:32]}.json"


def read_stamps(req: PypiRequest) -> dict[str, float]:
    """Project -> unix time of its last online resolution ({} when none or unreadable)."""
    try:
        raw = json.loads(_stamp_path(req).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, (int, float))}


def write_stamps(req: PypiRequest, names: list[str], now: float | None = None) -> None:
    """Mark ``names`` as resolved online now (best effort: a read-only home is fine)."""
    path = _stamp_path(req)
    stamps = read_stamps(req)
    stamp = time.time() if now is None else now
    stamps.update({n: stamp for n in names})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ensure_cachedir_tag(path.parent)
        atomic_write_text(path, json.dumps(dict(sorted(stamps.items())), indent=0) + "\n")
    except OSError:
        pass


def offline_answer_ok(req: PypiRequest, names: list[str], now: float | None = None) -> bool:
    """Whether an offline answer naming ``names`` is as good as an online one."""
    stamps = read_stamps(req)
    clock = time.time() if now is None else now
    ttl = ttl_seconds()
    cutoff = req.exclude_newer.timestamp() if req.exclude_newer is not None else None
    for name in names:
        seen = stamps.get(name)
        if seen is None:
            return False
        if not (clock - seen < ttl or (cutoff is not None and seen >= cutoff)):
            return False
    return True


def may_try_offline(req: PypiRequest) -> bool:
    """An offline try is worth it: an index is involved and something was stamped before."""
    if req.only_local or (ttl_seconds() == 0 and req.exclude_newer is None):
        return False
    return bool(read_stamps(req))
