"""Failure diagnosis: the first real error of a build log, and known signatures -> cause, fix.

The knowledge lives in ``data/diagnoses.yaml``: ``first_errors`` (where an error starts:
a compiler ``error:`` with file:line, a linker error, a Python traceback, an OS error)
and ``signatures`` (a regex, a cause and a fix per row); this module only loads and
matches them.  Named groups of a signature fill ``{placeholders}`` in its cause and fix.
The whole log is read, so the error shows even when pip's wrapper text follows it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from builder.util.cmd import tail

DATA = Path(__file__).parent / "data" / "diagnoses.yaml"


class Signature(BaseModel):
    """One known failure: an id, a regex, and what to tell the user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    pattern: str
    cause: str
    fix: str


class ErrorStart(BaseModel):
    """One way an error starts in a log (a ``first_errors`` row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    pattern: str
    before: int = 3
    after: int = 3


class FirstError(BaseModel):
    """The earliest real error in a log, with a few lines of context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    line: int  # 1-based line of the log where it starts
    location: str | None  # "src/vision.cpp:8" for a compiler error
    excerpt: str


class Diagnosis(BaseModel):
    """A matched signature with its placeholders filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    cause: str
    fix: str
    evidence: str  # the log line that matched


@functools.lru_cache(maxsize=4)
def load_signatures(path: Path = DATA) -> tuple[Signature, ...]:
    """The signature table (validated; cached per path)."""
    from ruamel.yaml import YAML

    data: Any = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return tuple(Signature.model_validate(row) for row in data["signatures"])


@functools.lru_cache(maxsize=4)
def load_error_starts(path: Path = DATA) -> tuple[ErrorStart, ...]:
    """The ``first_errors`` table (validated; cached per path)."""
    from ruamel.yaml import YAML

    data: Any = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return tuple(ErrorStart.model_validate(row) for row in data["first_errors"])


_MAX_TRACEBACK = 16  # lines of a traceback kept (its header, then the last frames)


def first_error(log: str, starts: tuple[ErrorStart, ...] | None = None,
                strip: str | None = None) -> FirstError | None:
    """The earliest line of ``log`` where an error starts, with its context.

    ``strip`` (the build copy's path) is removed from locations and the excerpt, so paths
    read relative to the op's tree.
    """
    lines = log.splitlines()
    rows = [(s, re.compile(s.pattern)) for s in (starts or load_error_starts())]
    for i, text in enumerate(lines):
        for row, rx in rows:
            m = rx.search(text)
            if m is None:
                continue
            end = (_traceback_end(lines, i) if row.kind == "traceback"
                   else _context_end(lines, i, row.after))
            body = lines[max(0, i - row.before):min(len(lines), end)]
            if row.kind == "traceback" and len(body) > _MAX_TRACEBACK + row.before:
                keep = row.before + 1
                cut = len(body) - _MAX_TRACEBACK + keep
                body = [*body[:keep], f"  ... ({cut - keep} lines of frames)", *body[cut:]]
            groups = m.groupdict()
            number = groups.get("line") or groups.get("line2")
            where = f"{groups['file']}:{number}" if groups.get("file") and number else None
            if where and strip and not where.startswith(strip):
                own = _own_location(lines, i, strip)
                if own is not None:
                    body.append(lines[own[1]])
                    where = f"{own[0]} (error reported in {where})"
            if strip:
                body = [line.replace(strip.rstrip("/") + "/", "") for line in body]
                where = where.replace(strip.rstrip("/") + "/", "") if where else None
            excerpt = "\n".join(_short(line) for line in body)
            return FirstError(kind=row.kind, line=i + 1, location=where, excerpt=excerpt)
    return None


def _own_location(lines: list[str], start: int, root: str) -> tuple[str, int] | None:
    """For an error inside a header of torch or the toolkit: the first line of the op's own
    tree (under ``root``) in the notes that follow (gcc's "in expansion of macro" chain)."""
    rx = re.compile(re.escape(root.rstrip("/")) + r"/(\S+?):(\d+)(?::\d+)?:")
    for j in range(start + 1, min(len(lines), start + 40)):
        m = rx.search(lines[j])
        if m:
            return f"{m.group(1)}:{m.group(2)}", j
    return None


_LINE_MAX = 240
_NINJA_STEP = re.compile(r"^\s*(?:\[\d+/\d+\]|FAILED:) ")


def _short(line: str) -> str:
    """A context line cut to a readable length (compiler command lines run to kilobytes)."""
    return line if len(line) <= _LINE_MAX else line[:_LINE_MAX] + " ..."


def _context_end(lines: list[str], start: int, after: int) -> int:
    """Index just past the context after an error line: ``after`` lines, stopping at the next
    build step (ninja's ``[n/m]``)."""
    end = start + 1
    while end < len(lines) and end <= start + after and not _NINJA_STEP.match(lines[end]):
        end += 1
    return end


def _traceback_end(lines: list[str], start: int) -> int:
    """Index just past the exception line(s) of the traceback whose header is ``lines[start]``."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    i = start + 1
    while i < len(lines):
        text = lines[i]
        level = len(text) - len(text.lstrip())
        if text.strip() and level <= indent:
            break  # the exception line
        i += 1
    end = i + 1
    while end < len(lines) and end < i + 4:
        nxt = lines[end].strip()
        if not nxt or nxt.startswith(("error:", "×", "note:", "During handling", "The above")):
            break
        end += 1
    return min(end, len(lines))


def diagnose(log: str, signatures: tuple[Signature, ...] | None = None) -> list[Diagnosis]:
    """Every known signature found in ``log``, in table order (each at most once)."""
    out = []
    for sig in signatures if signatures is not None else load_signatures():
        m = re.search(sig.pattern, log)
        if m is None:
            continue
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        line_start = log.rfind("\n", 0, m.start()) + 1
        line_end = log.find("\n", m.start())
        evidence = log[line_start: line_end if line_end != -1 else len(log)].strip()
        out.append(Diagnosis(id=sig.id, cause=_fill(sig.cause, groups), fix=_fill(sig.fix, groups),
                             evidence=evidence[:300]))
    return out


def _fill(text: str, groups: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: groups.get(m.group(1), m.group(0)), text)


def explain(log: str, *, tail_lines: int = 30, strip: str | None = None) -> str:
    """A human report: the first real error, each diagnosis (cause, fix, evidence), then the
    log tail."""
    parts = []
    first = first_error(log, strip=strip)
    if first is not None:
        where = f", {first.location}" if first.location else ""
        parts.append(f"first error ({first.kind}, log line {first.line}{where}):\n"
                     + "\n".join(f"  | {line}" for line in first.excerpt.splitlines()))
    for d in diagnose(log):
        parts.append(f"known problem [{d.id}]: {d.cause}\n  fix: {d.fix}\n  seen: {d.evidence}")
    if not parts:
        parts.append("no known failure signature matched; see the log tail below")
    parts.append("--- last lines of the build log ---\n" + tail(log, tail_lines))
    return "\n".join(parts)
