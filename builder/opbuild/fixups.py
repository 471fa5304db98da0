"""Named source fixups: small, tested transformations applied to the build copy.

A fixup never touches the user's checkout: it runs on the fresh copy in the
build dir.  Each has a name (what specs, the matrix and the store key use) and a
version (bump it when the transformation changes so old store entries are not
reused).  :data:`REGISTRY` is the one table of them; look names up with
:func:`get_fixup`, never by comparing names in code.

Automatic fixups (:func:`plan_fixups`): a registered fixup whose matrix rule
(``matrix/data/sources.yaml``) covers the prefix's torch is applied to any op whose
source holds the pattern it repairs (its transform would change a file), with no matrix
row for that op and no spec line.  A spec switches one off with ``skip_fixups``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UsageError
from builder.models import Frozen


@dataclass(frozen=True)
class Fixup:
    """One transformation of source text, applied to files matching ``globs``."""

    name: str
    version: int
    description: str
    globs: tuple[str, ...]
    transform: Callable[[str], str]

    def key(self) -> str:
        """``name@version``: what the store key records."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class FixupReport:
    """Which files a fixup changed, and how many replacements it made."""

    name: str
    changed: tuple[str, ...]
    replacements: int


_DISPATCH = re.compile(r"\bAT_DISPATCH_[A-Z0-9_]+\s*\(")
_TYPE_CALL = re.compile(r"\.type\(\s*\)")


def _first_argument_end(text: str, start: int) -> int:
    """Index of the comma (or closing paren) ending the macro argument that starts at ``start``."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return i
            depth -= 1
        elif ch == "," and depth == 0:
            return i
        elif ch in "\"'":
            i = _skip_literal(text, i)
        i += 1
    return len(text)


def _skip_literal(text: str, i: int) -> int:
    quote = text[i]
    i += 1
    while i < len(text) and text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i


def dispatch_scalar_type(text: str) -> str:
    """``AT_DISPATCH_*(x.type(), ...)`` -> ``AT_DISPATCH_*(x.scalar_type(), ...)``.

    torch >= 2.6 removed the ``DeprecatedTypeProperties`` overload the dispatch
    macros relied on.  Only the macro's first argument is rewritten; other
    ``.type()`` calls (e.g. ``x.type().is_cuda()``) still compile and are left alone.
    """
    out: list[str] = []
    pos = 0
    for m in _DISPATCH.finditer(text):
        if m.start() < pos:
            continue
        end = _first_argument_end(text, m.end())
        out.append(text[pos:m.end()])
        out.append(_TYPE_CALL.sub(".scalar_type()", text[m.end():end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


_CXX_SOURCES = ("*.cu", "*.cuh", "*.cpp", "*.cc", "*.cxx", "*.h", "*.hpp")

REGISTRY: dict[str, Fixup] = {
    f.name: f
    for f in (
        Fixup(
            name="dispatch-scalar-type",
            version=1,
            description="value.type() -> value.scalar_type() inside AT_DISPATCH_* (torch >= 2.6)",
            globs=_CXX_SOURCES,
            transform=dispatch_scalar_type,
        ),
    )
}


def get_fixup(name: str) -> Fixup:
    """The registered fixup called ``name``, or an error listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown fixup {name!r}",
                         hint="known fixups: " + ", ".join(sorted(REGISTRY))) from None


def fixup_keys(names: Iterable[str]) -> list[str]:
    """``name@version`` for each fixup, in the order given (part of the store key)."""
    return [get_fixup(n).key() for n in names]


class PlannedFixup(Frozen):
    """One fixup a build applies: where (files, relative to the op) and why."""

    name: str
    key: str  # name@version
    files: tuple[str, ...]
    why: str
    automatic: bool  # chosen from the source, not named by the spec or the matrix

    def describe(self) -> str:
        how = "automatic" if self.automatic else "requested"
        where = ", ".join(self.files) if self.files else "no file matched"
        return f"{self.key} ({how}) in {where}: {self.why}"


def matching_files(root: Path, fixup: Fixup) -> list[Path]:
    """Files under ``root`` the fixup would change (read only)."""
    out = []
    for path in sorted({p for g in fixup.globs for p in root.rglob(g) if p.is_file()}):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if fixup.transform(text) != text:
            out.append(path)
    return out


def _auto_rules(torch_version: str) -> dict[str, str]:
    """Fixup name -> why, for each matrix rule whose torch range covers ``torch_version``."""
    from builder.matrix.load import load_matrix
    from builder.matrix.models import in_range

    rules = load_matrix().sources.fixups
    return {r.name: r.why for r in rules
            if r.torch is not None and in_range(torch_version, r.torch)}


def plan_fixups(root: Path, torch_version: str, requested: Iterable[str],
                skipped: Iterable[str] = ()) -> tuple[PlannedFixup, ...]:
    """The fixups a build of ``root`` applies, in order: the requested ones (spec and matrix),
    then each registered fixup the prefix's torch needs whose pattern is in the source.

    ``skipped`` names fixups the spec switched off (requested ones included).  Unknown names
    are an error.
    """
    skip = {get_fixup(n).name for n in skipped}
    requested = tuple(requested)
    rules = _auto_rules(torch_version) if torch_version else {}
    out: list[PlannedFixup] = []
    names = [get_fixup(n).name for n in requested if n not in skip]
    for name in sorted(REGISTRY):
        if name in rules and name not in skip and name not in names:
            names.append(name)
    for name in dict.fromkeys(names):
        fixup = REGISTRY[name]
        files = tuple(p.relative_to(root).as_posix() for p in matching_files(root, fixup))
        automatic = name not in requested
        if automatic and not files:
            continue
        why = rules.get(name, fixup.description)
        if automatic:
            why = f"torch {torch_version} needs it and the source has the pattern; {why}"
        out.append(PlannedFixup(name=name, key=fixup.key(), files=files, why=why,
                                automatic=automatic))
    return tuple(out)


def apply_fixups(root: Path, names: Iterable[str]) -> list[FixupReport]:
    """Apply the named fixups, in order, to every matching file under ``root`` (in place)."""
    reports = []
    for name in names:
        fixup = get_fixup(name)
        changed: list[str] = []
        count = 0
        for path in matching_files(root, fixup):
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            new = fixup.transform(text)
            if new != text:
                count += sum(1 for a, b in zip(text.split("\n"), new.split("\n"), strict=False)
                             if a != b)
                path.write_text(new, encoding="utf-8", errors="surrogateescape")
                changed.append(path.relative_to(root).as_posix())
        reports.append(FixupReport(name=name, changed=tuple(changed), replacements=count))
    return reports
