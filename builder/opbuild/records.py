"""What envbuild installed into a prefix: one record per op, ``.envbuild/ops/<op>.json``.

A record says which build (store key, wheel and its sha256), which distribution, which
modules, and where the code came from (source name, git URL or path, commit).  The build
uses it to skip an install of the same key and to tell an upgrade of the same op from a
collision with another one; sanity uses it to name the op, source and commit each check
tested.  Records written by older envbuild hold only ``key`` and ``wheel``; every other
field then defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from builder.models import Frozen as _Frozen
from builder.util.fs import atomic_write_text


class OpOrigin(_Frozen):
    """Where an op's code came from."""

    source: str = ""  # the spec's source name
    location: str = ""  # git URL or absolute path of the source
    commit: str | None = None  # pinned commit of a git source
    digest: str = ""  # content sha256 of the op's tree

    def describe(self) -> str:
        """``source mask2former (https://... @ 9b0651cc)``, or ``source unknown``."""
        if not self.source and not self.location:
            return "source unknown"
        at = f" @ {self.commit[:12]}" if self.commit else ""
        return f"source {self.source or '?'} ({self.location or '?'}{at})"

    def same_code_base(self, other: OpOrigin) -> bool:
        """True when both name the same repository or path (commits may differ)."""
        if not self.location or not other.location:
            return True  # an old record without an origin: treat as this op's own
        return self.location.rstrip("/").removesuffix(".git") == \
            other.location.rstrip("/").removesuffix(".git")


class OpRecord(_Frozen):
    """One op installed into a prefix by envbuild."""

    key: str
    wheel: str
    op: str = ""
    wheel_sha256: str = ""
    dist: str = ""  # canonical distribution name
    modules: tuple[str, ...] = ()  # import names the sanity import check tries
    sanity: str | None = None
    origin: OpOrigin = OpOrigin()


def records_dir(prefix: Path) -> Path:
    """``$PREFIX/.envbuild/ops``."""
    return prefix / ".envbuild" / "ops"


def read_record(prefix: Path, op: str) -> OpRecord | None:
    """The record of ``op`` in ``prefix``, or None (missing or unreadable)."""
    path = records_dir(prefix) / f"{op}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data.setdefault("op", op)
        return OpRecord.model_validate(data)
    except (OSError, ValueError, ValidationError):
        return None


def read_records(prefix: Path) -> list[OpRecord]:
    """Every readable op record of ``prefix``, by op name."""
    d = records_dir(prefix)
    names = sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []
    return [r for r in (read_record(prefix, n) for n in names) if r is not None]


def write_record(prefix: Path, record: OpRecord) -> None:
    """Write ``record`` atomically."""
    atomic_write_text(records_dir(prefix) / f"{record.op}.json",
                      json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True))
