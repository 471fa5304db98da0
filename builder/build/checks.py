"""Checks of a built op that need no GPU.

* :func:`check_targets`: ``cuobjdump --list-elf`` of every extension in the wheel
  shows exactly the planned ``sm_`` targets, and ``--list-ptx`` shows PTX exactly
  for the arches planned with ``+PTX``.
* :func:`check_import`: the built modules import in the prefix's python after torch.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from builder.errors import CheckFailed
from builder.util.cmd import run

_SM = re.compile(r"\bsm_(\d+[a-z]?)\b")
_COMPUTE = re.compile(r"\bcompute_(\d+[a-z]?)\b")


def planned_targets(arch_list: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """(sm targets, ptx targets) like ({"90"}, {"90"}) for ("9.0+PTX",)."""
    sm: set[str] = set()
    ptx: set[str] = set()
    for arch in arch_list:
        base = arch.removesuffix("+PTX").replace(".", "")
        sm.add(base)
        if arch.endswith("+PTX"):
            ptx.add(base)
    return sm, ptx


def extension_members(wheel: Path) -> list[str]:
    """Paths of the compiled extensions (``*.so``) inside a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        return sorted(n for n in zf.namelist() if n.endswith(".so"))


def module_names(wheel: Path) -> list[str]:
    """Dotted import names of the wheel's extensions.

    ``detectron2/_C.cpython-311-x86_64-linux-gnu.so`` -> ``detectron2._C``.
    """
    out = []
    for member in extension_members(wheel):
        parts = member.split("/")
        if any(p.endswith((".data", ".dist-info")) for p in parts[:-1]):
            continue
        out.append(".".join([*parts[:-1], parts[-1].split(".")[0]]))
    return out


def check_targets(wheel: Path, arch_list: tuple[str, ...], cuobjdump: Path, work: Path) -> str:
    """Raise unless every extension carries exactly the planned targets; returns a summary."""
    want_sm, want_ptx = planned_targets(arch_list)
    members = extension_members(wheel)
    if not members:
        raise CheckFailed(f"{wheel.name} contains no compiled extension (*.so)",
                          hint="the build did not compile the CUDA sources; check FORCE_CUDA and "
                               "the op's setup.py")
    summary = []
    with zipfile.ZipFile(wheel) as zf:
        for member in members:
            so = Path(zf.extract(member, work / "so"))
            elf = run([cuobjdump, "--list-elf", so], check=False)
            ptx = run([cuobjdump, "--list-ptx", so], check=False)
            got_sm = set(_SM.findall(elf.stdout))
            got_ptx = set(_COMPUTE.findall(ptx.stdout)) | set(_SM.findall(ptx.stdout))
            if got_sm != want_sm or got_ptx != want_ptx:
                raise CheckFailed(
                    f"{member}: cuobjdump shows sm {sorted(got_sm)} / ptx {sorted(got_ptx)}, "
                    f"planned sm {sorted(want_sm)} / ptx {sorted(want_ptx)}",
                    hint="the build ignored TORCH_CUDA_ARCH_LIST (does the op's setup.py set its "
                         "own -gencode flags?)")
            summary.append(f"{member}: sm_{','.join(sorted(got_sm))}"
                           + (f" ptx {','.join(sorted(got_ptx))}" if got_ptx else ""))
    return "; ".join(summary)


def check_import(python: Path, modules: list[str], env: dict[str, str]) -> None:
    """``python -c 'import torch, <modules>'`` in the prefix, or a CheckFailed with the error."""
    code = "import torch\n" + "".join(f"import {m}\n" for m in modules)
    res = run([python, "-c", code], env=env, check=False)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CheckFailed(f"the built op does not import in the prefix: {last}",
                          hint="see the import error above; an undefined symbol usually means the "
                               "op was built against another torch")
