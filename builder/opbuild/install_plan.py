"""The install plan: checked once every op's wheel is ready, before anything is installed.

* **Collisions**: no two ops of the spec install the same module or file, and no op
  installs one the prefix already has from something else (another op, another source,
  or a package not installed by envbuild).  Replacing the prefix's earlier build of the
  same op from the same code base is an upgrade and allowed.
* **Dependencies**: each op to install has its ``Requires-Dist`` and the matrix's pins for
  its source met by the prefix (or by another op of the plan).

Either kind of problem is a :class:`~builder.errors.CheckFailed` naming every case; the
prefix is left as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from builder.errors import CheckFailed
from builder.opbuild.collisions import Claims, prefix_collisions, spec_collisions, wheel_claims
from builder.opbuild.deps import check_requirements, describe, wheel_requirements
from builder.opbuild.prefixinfo import PrefixInfo, prefix_info
from builder.opbuild.records import OpRecord, read_records

if TYPE_CHECKING:
    from builder.opbuild.ops import PreparedOp


def _dist(r: OpRecord) -> str:
    return r.dist or canonicalize_name(Path(r.wheel).name.split("-", 1)[0])


def _allowed(p: PreparedOp, records: list[OpRecord]) -> set[str]:
    """Distributions ``p`` may replace: the prefix's earlier build of the same op."""
    return {_dist(r) for r in records
            if r.op == p.req.name and r.origin.same_code_base(p.req.origin)}


def _recorded(records: list[OpRecord]) -> dict[str, str]:
    return {_dist(r): f"op {r.op} from {r.origin.describe()}" for r in records}


def collisions(prepared: list[PreparedOp], claims: list[Claims], info: PrefixInfo,
               records: list[OpRecord]) -> list[str]:
    """Every collision of the plan, one line each."""
    problems = spec_collisions(claims)
    recorded = _recorded(records)
    for p, c in zip(prepared, claims, strict=True):
        if p.needs_install:
            problems += prefix_collisions(c, info, _allowed(p, records), recorded)
    return problems


def check_plan(prepared: list[PreparedOp]) -> None:
    """Raise CheckFailed naming every collision and unmet dependency of the plan."""
    if not prepared or not any(p.needs_install for p in prepared):
        return
    first = prepared[0]
    claims = [wheel_claims(p.req.name, p.req.origin.describe(), p.entry.wheel) for p in prepared]
    from builder.opbuild.candidate import prefix_env

    info = prefix_info(first.tc.facts.python, prefix_env(first.tc),
                       files=[f for c in claims for f in c.files],
                       tops=[t for c in claims for t in c.tops])
    records = read_records(first.req.prefix)
    found = collisions(prepared, claims, info, records)
    if found:
        raise CheckFailed("ops would overwrite each other's files:\n"
                          + "\n".join(f"  - {line}" for line in found),
                          hint="build one of them into another prefix, rename one op's module, "
                               "or uninstall the other package from the prefix first")
    # the plan's own ops count as installed for each other's requirements
    planned = {c.dist: p.entry.wheel.name.split("-")[1]
               for p, c in zip(prepared, claims, strict=True)}
    with_plan = info.model_copy(update={"dists": {**info.dists, **planned}})
    messages = []
    for p in prepared:
        if not p.needs_install:
            continue
        problems = check_requirements([*wheel_requirements(p.entry.wheel), *p.req.requirements],
                                      with_plan)
        if problems:
            messages.append(describe(p.req.name, problems, p.req.spec))
    if messages:
        raise CheckFailed("\n".join(messages),
                          hint="add what is named above (the spec's pip:, then `envbuild env`, "
                               "or pip install it into the prefix) and run the build again")
