"""Runtime dependencies of an op wheel, checked against the prefix it goes into.

Op wheels are installed with ``--no-deps`` (the env is hash-locked, nothing may be pulled
in behind the lockfile's back), so the op's own requirements must already be there.  Two
kinds are checked, each with the reason it applies:

* the wheel's ``Requires-Dist`` (its markers evaluated for the prefix's python; extras
  are not requested, so ``extra == ...`` requirements are skipped);
* the matrix's pip pins for the op's source (``builder/matrix/data/sources.yaml``), the
  same pins ``envbuild env`` locks: ``setuptools<82`` for detectron2, and so on.

Each missing or conflicting requirement is named with the spec ``pip:`` line that would
add it.  :func:`missing_module_hint` does the same for an import that failed with
``No module named 'X'``.
"""

from __future__ import annotations

import email.parser
import functools
import re
import zipfile
from pathlib import Path

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from builder.models import Frozen as _Frozen
from builder.opbuild.prefixinfo import PrefixInfo

METADATA_WHY = "the op's metadata (Requires-Dist)"
PROVIDERS = Path(__file__).parent / "data" / "module_providers.yaml"
_NO_MODULE = re.compile(r"No module named '([^'.]+)")


class OpRequirement(_Frozen):
    """One requirement and why it applies (the metadata, or a matrix pin's reason)."""

    text: str  # PEP 508, e.g. "setuptools<82"
    why: str


class DepProblem(_Frozen):
    """A requirement the prefix does not satisfy."""

    requirement: str
    why: str
    found: str | None  # the installed version; None: not installed
    pip_line: str  # what to add under the spec's pip:


def wheel_requirements(wheel: Path) -> list[OpRequirement]:
    """``Requires-Dist`` of a wheel, in the order its METADATA lists them."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist()
                 if n.count("/") == 1 and n.split("/")[0].endswith(".dist-info")
                 and n.endswith("/METADATA")]
        if not names:
            return []
        text = zf.read(names[0]).decode("utf-8", errors="replace")
    msg = email.parser.HeaderParser().parsestr(text)
    return [OpRequirement(text=r, why=METADATA_WHY) for r in msg.get_all("Requires-Dist") or []]


@functools.lru_cache(maxsize=2)
def module_providers(path: Path = PROVIDERS) -> dict[str, str]:
    """``{import name: distribution}`` where the two differ (``data/module_providers.yaml``)."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return {str(row["module"]): str(row["dist"]) for row in data["providers"]}


def _applies(req: Requirement, env: dict[str, str]) -> bool:
    if req.marker is None:
        return True
    try:
        return req.marker.evaluate({**env, "extra": ""})
    except UndefinedEnvironmentName:
        return True


def pip_line(req: Requirement) -> str:
    """The spec ``pip:`` entry for a requirement (its marker dropped: it applies here)."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}" if not req.url else f"{req.name} @ {req.url}"


def check_requirements(reqs: list[OpRequirement], info: PrefixInfo) -> list[DepProblem]:
    """Every requirement that applies to this prefix and is missing or not satisfied."""
    installed = {canonicalize_name(n): v for n, v in info.dists.items()}
    problems = []
    for item in reqs:
        try:
            req = Requirement(item.text)
        except InvalidRequirement:
            continue  # a malformed line in someone's metadata is not ours to enforce
        if not _applies(req, info.env):
            continue
        found = installed.get(canonicalize_name(req.name))
        if found is not None and _satisfies(req, found):
            continue
        problems.append(DepProblem(requirement=str(req), why=item.why, found=found,
                                   pip_line=pip_line(req)))
    return problems


def _satisfies(req: Requirement, version: str) -> bool:
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return req.specifier.contains(version, prereleases=True)


def describe(op: str, problems: list[DepProblem], spec: Path | None = None) -> str:
    """A message naming each problem and the ``pip:`` lines that fix them."""
    lines = [f"op {op} needs what the prefix does not have:"]
    for p in problems:
        state = "not installed" if p.found is None else f"installed {p.found}, which conflicts"
        lines.append(f"  {p.requirement}: {state} (required by {p.why})")
    where = f"{spec}" if spec else "the spec"
    lines.append(f"add to {where} under pip: " + ", ".join(f'"{p.pip_line}"' for p in problems))
    return "\n".join(lines)


def missing_module_hint(output: str, reqs: list[OpRequirement], info: PrefixInfo | None) -> str:
    """For ``No module named 'X'`` in an import's output: the requirement behind X and the
    ``pip:`` line that adds it; "" when the output names no missing module."""
    found = _NO_MODULE.search(output)
    if not found:
        return ""
    module = found.group(1)
    provider = module_providers().get(module, module)
    wanted = {canonicalize_name(module), canonicalize_name(provider)}
    for item in reqs:
        try:
            req = Requirement(item.text)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) in wanted and (info is None or _applies(req, info.env)):
            return (f"module {module!r} comes from {req.name}, required by {item.why} as "
                    f"{str(req)!r}; add pip: \"{pip_line(req)}\" to the spec")
    return (f"module {module!r} is imported by the op but declared nowhere (not in its "
            f"metadata or the matrix pins); add the package that provides it (likely pip: "
            f"\"{provider}\") to the spec")
