"""Failure diagnosis: known signatures in a build log -> cause and fix.

The knowledge lives in ``data/diagnoses.yaml`` (a regex, a cause and a fix per
row); this module only loads and matches it.  Named groups of the pattern fill
``{placeholders}`` in the cause and fix text.
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


def explain(log: str, *, tail_lines: int = 30) -> str:
    """A human report: each diagnosis (cause, fix, evidence), then the log tail."""
    parts = []
    for d in diagnose(log):
        parts.append(f"known problem [{d.id}]: {d.cause}\n  fix: {d.fix}\n  seen: {d.evidence}")
    if not parts:
        parts.append("no known failure signature matched; see the log tail below")
    parts.append("--- last lines of the build log ---\n" + tail(log, tail_lines))
    return "\n".join(parts)
