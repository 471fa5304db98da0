"""Named source fixups: small, tested transformations applied to the build copy.

A fixup never touches the user's checkout: it runs on the fresh copy in the
build dir.  Each has a name (what specs, the matrix and the store key use) and a
version (bump it when the transformation changes so old store entries are not
reused).  :data:`REGISTRY` is the one table of them; look names up with
:func:`get_fixup`, never by comparing names in code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UsageError


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


def apply_fixups(root: Path, names: Iterable[str]) -> list[FixupReport]:
    """Apply the named fixups, in order, to every matching file under ``root`` (in place)."""
    reports = []
    for name in names:
        fixup = get_fixup(name)
        changed: list[str] = []
        count = 0
        for path in sorted({p for g in fixup.globs for p in root.rglob(g) if p.is_file()}):
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            new = fixup.transform(text)
            if new != text:
                count += sum(1 for a, b in zip(text.split("\n"), new.split("\n"), strict=False)
                             if a != b)
                path.write_text(new, encoding="utf-8", errors="surrogateescape")
                changed.append(path.relative_to(root).as_posix())
        reports.append(FixupReport(name=name, changed=tuple(changed), replacements=count))
    return reports
