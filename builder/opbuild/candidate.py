"""The checks a built wheel must pass before it is published or installed.

``check-targets`` (cuobjdump shows exactly the planned sm/PTX targets), ``check-deps``
(the op's Requires-Dist and the matrix's pins for its source are in the prefix) and
``check-import`` (its modules import in the prefix's python, from the candidate).  They
run on the candidate inside the store's temp dir; a failure after a compile keeps the
wheel and its log in quarantine (:mod:`quarantine`) and says where.
"""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

from builder import paths
from builder.errors import CheckFailed
from builder.opbuild import checks, quarantine
from builder.opbuild.deps import (
    OpRequirement,
    check_requirements,
    describe,
    missing_module_hint,
    wheel_requirements,
)
from builder.opbuild.opmodels import OpBuildRequest, Steps
from builder.opbuild.prefixinfo import prefix_info
from builder.opbuild.preflight import Toolchain
from builder.opbuild.toolchain import find_cuobjdump
from builder.util.fs import remove_tree


def check_candidate(req: OpBuildRequest, tc: Toolchain, wheel: Path, out: Path, steps: Steps,
                    key: str, store_root: Path, *, kept: bool = False) -> None:
    """check-targets, check-deps, check-import on ``wheel``; moves it to ``out`` if all pass,
    else keeps it in quarantine and raises naming the check, the cause and where it is.
    ``kept``: ``wheel`` is a quarantined build checked again (nothing was compiled)."""
    work = out / "check"
    current = "check-targets"
    try:
        with steps.step("check-targets"):
            steps.details["check-targets"] = _check_targets(req, tc, wheel, work)
        current = "check-deps"
        with steps.step("check-deps"):
            steps.details["check-deps"] = _check_deps(req, tc, wheel)
        current = "check-import"
        with steps.step("check-import"):
            check_import_of(req, tc, wheel, work / "candidate")
    except CheckFailed as exc:
        where = quarantine.keep(store_root, key, wheel, out / "build.log", current, exc.message)
        what = (f"the kept build of {req.name} (not compiled again) still fails {current}"
                if kept else f"{req.name} compiled, but {current} failed")
        raise CheckFailed(f"{what}:\n{exc.message}\n"
                          + quarantine.notice(where), hint=_CHECK_HINTS.get(current, exc.hint)
                          or exc.hint) from None
    shutil.move(str(wheel), out / wheel.name)
    remove_tree(work, inside=out, ignore_errors=True)
    remove_tree(out / "dist", inside=out, ignore_errors=True)


_CHECK_HINTS = {
    "check-deps": "add what is named above (the spec's pip:, then `envbuild env`, or pip "
                  "install it into the prefix) and run the build again",
    "check-import": "fix the cause named above (a missing package: add it to the spec's pip:; "
                    "a broken op: fix its source, which then builds anew) and build again",
}


def _requirements(req: OpBuildRequest, wheel: Path) -> list[OpRequirement]:
    return [*wheel_requirements(wheel), *req.requirements]


def _check_deps(req: OpBuildRequest, tc: Toolchain, wheel: Path) -> str:
    """The op's Requires-Dist and the matrix's pins for its source, against the prefix."""
    reqs = _requirements(req, wheel)
    if not reqs:
        return "no requirements declared"
    problems = check_requirements(reqs, prefix_info(tc.facts.python, prefix_env(tc)))
    if problems:
        raise CheckFailed(describe(req.name, problems, req.spec))
    return f"{len(reqs)} requirement(s) met"


def _check_targets(req: OpBuildRequest, tc: Toolchain, wheel: Path, work: Path) -> str:
    """cuobjdump the wheel's extensions; the tool is looked for in the toolkit, PATH, the
    prefix, the site dir torch comes from, and envbuild's own environment.  A CPU build has
    no device code: the wheel must hold compiled extensions, and that is all."""
    if tc.cpu_only:
        members = checks.extension_members(wheel)
        if not members:
            raise CheckFailed(f"{wheel.name} contains no compiled extension (*.so)",
                              hint="the op's setup.py built no extension; check its ext_modules")
        return f"no device code (CPU build): {', '.join(members)}"
    torch_site = tc.facts.torch_dir.parent if tc.facts.torch_dir else None
    tool = find_cuobjdump(tc.toolkit, tc.facts.site_packages, torch_site,
                          Path(sysconfig.get_paths()["purelib"]))
    if tool is None:
        if req.require_cuobjdump:
            raise CheckFailed("cuobjdump not found; cannot check the built sm targets",
                              hint="pip install nvidia-cuda-cuobjdump into the prefix")
        return "NOT CHECKED: no cuobjdump (toolkit, PATH, nvidia wheels, triton)"
    return f"{checks.check_targets(wheel, req.arch_list, tool, work)} (cuobjdump: {tool})"


def prefix_env(tc: Toolchain) -> dict[str, str]:
    """The environment pip and python get in the prefix (nothing inherited by accident)."""
    return {"PATH": str(tc.prefix / "bin") + ":/usr/bin:/bin", "HOME": str(paths.home()),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}


def check_import_of(req: OpBuildRequest, tc: Toolchain, wheel: Path, where: Path) -> None:
    """Unpack ``wheel`` into ``where`` and import it there with the prefix's python; a
    ``No module named`` failure names the requirement behind it and its ``pip:`` line."""
    checks.unpack_wheel(wheel, where)
    try:
        checks.check_import(tc.facts.python, checks.module_names(wheel), prefix_env(tc),
                            where=where)
    except CheckFailed as exc:
        hint = missing_module_hint(exc.message, _requirements(req, wheel), None)
        if not hint:
            raise
        raise CheckFailed(f"{exc.message}\n{hint}", hint=exc.hint) from None
    finally:
        remove_tree(where, inside=where.parent, ignore_errors=True)
