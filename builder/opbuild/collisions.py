"""Two things installing the same module or file into one prefix is an error, never a
silent replacement.

What a wheel claims (:func:`wheel_claims`): every file it installs into site-packages,
and each top-level name it installs as a module (``X.py``, ``X.<abi>.so``) or a regular
package (``X/__init__.py``).  Namespace packages (``nvidia/``) are shared by design, so
for them only the files count.

:func:`spec_collisions` compares the ops of one spec with each other;
:func:`prefix_collisions` compares one op with what the prefix already has, except the
distribution the prefix holds from an earlier build of the *same* op from the *same*
source (that is an upgrade, not a collision).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

from builder.models import Frozen as _Frozen
from builder.opbuild.prefixinfo import PrefixInfo


class Claims(_Frozen):
    """What one op's wheel would install."""

    op: str
    origin: str  # "source mask2former (github.com/facebookresearch/Mask2Former @ 9b0651c)"
    dist: str  # the wheel's distribution name
    files: tuple[str, ...]
    tops: tuple[str, ...]


def wheel_dist(wheel: Path) -> str:
    """The distribution name of a wheel file (``name-version-...whl``), canonicalised."""
    return canonicalize_name(wheel.name.split("-", 1)[0])


def wheel_claims(op: str, origin: str, wheel: Path) -> Claims:
    """Files and top-level module names ``wheel`` installs into site-packages."""
    files: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if name.endswith("/") or parts[0].endswith(".dist-info"):
                continue
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            files.append("/".join(parts))
    tops = {f.split(".", 1)[0] for f in files if "/" not in f and f.endswith((".py", ".so"))}
    tops |= {f.split("/", 1)[0] for f in files if f.count("/") == 1 and f.endswith("/__init__.py")}
    return Claims(op=op, origin=origin, dist=wheel_dist(wheel), files=tuple(sorted(files)),
                  tops=tuple(sorted(tops)))


def _shared(a: Claims, b: Claims) -> list[str]:
    same = sorted(set(a.tops) & set(b.tops))
    return same or sorted(set(a.files) & set(b.files))[:5]


def spec_collisions(claims: list[Claims]) -> list[str]:
    """One line per pair of ops that would install the same module or file."""
    out = []
    for i, a in enumerate(claims):
        for b in claims[i + 1:]:
            shared = _shared(a, b)
            if shared:
                out.append(f"op {a.op} ({a.origin}) and op {b.op} ({b.origin}) both install "
                           + ", ".join(shared))
    return out


def prefix_collisions(claims: Claims, info: PrefixInfo, allowed_dists: set[str],
                      recorded: dict[str, str]) -> list[str]:
    """One line per distribution in the prefix that owns something ``claims`` installs.

    ``allowed_dists``: canonical names the op may replace (its own earlier build);
    ``recorded``: canonical dist name -> how envbuild installed it ("op X from ..."), for
    the message.
    """
    by_dist: dict[str, list[str]] = {}
    for what, owners in sorted(info.owners.items()):
        if what not in claims.files and what not in claims.tops:
            continue
        for dist in owners:
            if canonicalize_name(dist) not in allowed_dists:
                by_dist.setdefault(dist, []).append(what)
    out = []
    for dist, items in sorted(by_dist.items()):
        version = info.dists.get(dist, "?")
        who = recorded.get(canonicalize_name(dist), "not installed by envbuild")
        out.append(f"op {claims.op} ({claims.origin}) would install {', '.join(items[:5])}, "
                   f"which the prefix already has from {dist} {version} ({who})")
    return out
