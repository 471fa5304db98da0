"""The op build toolchain at lock time: one provider per piece, or a refusal naming the gaps.

The resolution lists every build-time piece (compiler, nvcc, runtime, math-library and
Thrust headers) with its providers from the matrix, most preferred first.  The lock takes,
per piece, the first conda provider the channels have a record for.  A piece no channel
supplies is a gap: it is filled from the matrix's alternative providers of a kind the user
asked for (``--fill-gaps pypi``: the exact-version NVIDIA header wheels), else the lock
refuses with :class:`IncompleteToolchain` (exit 1), naming each missing piece and what would
complete it, unless ``--allow-incomplete`` was given; then the gap is recorded.

What was chosen is stored in the lockfile as :class:`LockedPiece` records
(``envbuild.toolchain``), each with its reason when it is not the first choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from builder.errors import ConflictError
from builder.resolve.resolution import BuildPiece, PieceOption

# pieces chosen by the lock's own logic (host compiler spec, nvcc with its fallbacks)
OWN_LOGIC = frozenset({"compiler", "nvcc"})
FILL_KINDS = ("pypi",)


class LockedPiece(BaseModel):
    """One build piece as the lockfile records it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    piece: str
    header: str | None = None  # the header torch needs from it (first pattern)
    kind: Literal["conda", "pypi"] | None = None  # None: missing (--allow-incomplete)
    spec: str | None = None
    include: str | None = None  # pypi: the header dir relative to site-packages
    reason: str | None = None  # why not the first choice, or why missing


class IncompleteToolchain(ConflictError):
    """The channels (and the allowed alternatives) cannot supply every build piece."""


@dataclass(frozen=True)
class Missing:
    """A piece without a provider: what was tried, and what would complete it."""

    piece: BuildPiece
    tried: tuple[str, ...]
    would_complete: tuple[str, ...]


@dataclass
class ToolchainChoice:
    """What the lock adds for the build pieces (beyond nvcc and the compiler)."""

    conda: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)
    locked: list[LockedPiece] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _header(piece: BuildPiece) -> str | None:
    return piece.headers[0] if piece.headers else None


def would_complete(piece: BuildPiece, fill_gaps: frozenset[str]) -> tuple[str, ...]:
    """Ways to supply ``piece``: channels with its conda providers, then alternatives."""
    conda = [o.spec for o in piece.providers if o.kind == "conda"]
    out = []
    if conda:
        out.append("a live or mirrored channel with a record for " + " or ".join(
            repr(s) for s in conda) + " (lock without --channel-snapshot, or --channel "
            "NAME=URL to a mirror)")
    for opt in piece.providers:
        if opt.kind != "conda" and opt.kind not in fill_gaps:
            out.append(f"--fill-gaps {opt.kind}: {opt.spec} (headers in "
                       f"site-packages/{opt.include})")
    return tuple(out)


def choose_pieces(pieces: tuple[BuildPiece, ...], has_match: Callable[[str], bool],
                  fill_gaps: frozenset[str]) -> ToolchainChoice:
    """One provider per header piece (see the module docstring); nvcc/compiler are skipped."""
    out = ToolchainChoice()
    for piece in pieces:
        if piece.piece in OWN_LOGIC:
            continue
        tried: list[str] = []
        chosen: PieceOption | None = None
        for opt in piece.providers:
            if opt.kind == "conda":
                if has_match(opt.spec):
                    chosen = opt
                    break
                tried.append(opt.spec)
            elif opt.kind in fill_gaps:
                chosen = opt
                break
        if chosen is None:
            out.missing.append(Missing(piece, tuple(tried), would_complete(piece, fill_gaps)))
            continue
        reason = None
        if tried:
            reason = (f"the channels have no record for {', '.join(repr(t) for t in tried)}"
                      + (f"; filled from {chosen.kind} (--fill-gaps {chosen.kind}): the "
                         "exact-version wheel of the runtime library this CUDA release pins"
                         if chosen.kind != "conda" else "")
                      + (f"; {chosen.note}" if chosen.note else ""))
            out.warnings.append(f"toolchain: {piece.piece} ({_header(piece)}) from "
                                f"{chosen.spec!r}: {reason}")
        out.locked.append(LockedPiece(piece=piece.piece, header=_header(piece), kind=chosen.kind,
                                      spec=chosen.spec, include=chosen.include, reason=reason))
        (out.conda if chosen.kind == "conda" else out.pip).append(chosen.spec)
    return out


def missing_locked(missing: list[Missing]) -> list[LockedPiece]:
    """Gaps as lockfile records (``--allow-incomplete``)."""
    return [LockedPiece(piece=m.piece.piece, header=_header(m.piece),
                        reason="missing: no provider; tried " + (", ".join(m.tried) or "none")
                        + (". Would complete it: " + "; ".join(m.would_complete)
                           if m.would_complete else ""))
            for m in missing]


def incomplete_warning(m: Missing) -> str:
    """The warning a lockfile carries for each gap it was allowed to keep."""
    return (f"toolchain incomplete: no provider for {m.piece.piece} ({m.piece.what}, "
            f"{_header(m.piece) or 'no header'}); op builds that need it fail the header "
            "preflight. Would complete it: " + ("; ".join(m.would_complete) or
                                                 "nothing the matrix knows"))


def refuse(missing: list[Missing], context: str) -> IncompleteToolchain:
    """The error for an incomplete toolchain: each gap, what was tried, what would fill it."""
    lines = []
    for m in missing:
        lines.append(f"  - {m.piece.piece} ({m.piece.what}; {_header(m.piece) or 'no header'}): "
                     f"tried {', '.join(m.tried) or 'no known provider'}")
        lines.extend(f"      would complete it: {w}" for w in m.would_complete)
    return IncompleteToolchain(
        f"the op build toolchain for {context} is incomplete; missing:\n" + "\n".join(lines),
        constraint="build toolchain",
        hint="use one of the ways named above, or pass --allow-incomplete to lock anyway "
             "(the lockfile then records each gap, and every later stage prints it)")
