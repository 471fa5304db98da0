"""Checks of a built op that need no GPU.

* :func:`check_targets`: ``cuobjdump --list-elf`` of every extension in the wheel
  shows exactly the planned ``sm_`` targets, and ``--list-ptx`` shows PTX exactly
  for the arches planned with ``+PTX``.
* :func:`check_import`: the built modules import in the prefix's python after torch.
  The op builder runs it on the *candidate* wheel unpacked into a temp dir
  (:func:`unpack_wheel`) before the wheel is published or the prefix is touched, and
  checks that every module really came from that dir (not an older installed copy).
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

from builder.errors import CheckFailed
from builder.opbuild.diagnose import diagnose
from builder.util.cmd import run, tail

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
                said = tail(elf.stderr.strip(), 3) if elf.returncode != 0 else ""
                raise CheckFailed(
                    f"{member}: cuobjdump shows sm {sorted(got_sm)} / ptx {sorted(got_ptx)}, "
                    f"planned sm {sorted(want_sm)} / ptx {sorted(want_ptx)}"
                    + (f"\n{cuobjdump} --list-elf exited {elf.returncode}: {said}" if said else ""),
                    hint="the build ignored TORCH_CUDA_ARCH_LIST (does the op's setup.py set its "
                         "own -gencode flags?)")
            summary.append(f"{member}: sm_{','.join(sorted(got_sm))}"
                           + (f" ptx {','.join(sorted(got_ptx))}" if got_ptx else ""))
    return "; ".join(summary)


def unpack_wheel(wheel: Path, dest: Path) -> Path:
    """Unpack a wheel's importable files into ``dest`` as ``pip install --target`` lays them
    out (a wheel is a zip; ``*.data/purelib`` and ``*.data/platlib`` go to the top, other
    ``*.data`` schemes are left out); returns ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if info.filename.startswith("/") or ".." in parts:
                raise CheckFailed(f"{wheel.name}: unsafe member path {info.filename!r}")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            if info.is_dir():
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest


_IMPORT_CODE = """\
import importlib, os, sys
import torch
where = sys.argv[1]
for name in sys.argv[2:]:
    mod = importlib.import_module(name)
    got = os.path.realpath(getattr(mod, "__file__", None) or "")
    if where and not got.startswith(os.path.realpath(where) + os.sep):
        sys.exit(f"{name} was imported from {got or '(no file)'}, not from {where}")
"""


def check_import(python: Path, modules: list[str], env: dict[str, str],
                 where: Path | None = None) -> None:
    """Import torch, then ``modules``, in ``python``; a CheckFailed with the error otherwise.

    With ``where`` (an unpacked candidate wheel) that dir goes first on ``PYTHONPATH`` and
    every module must be loaded from it, so an older installed copy cannot pass the check.
    The error carries any known diagnosis (``data/diagnoses.yaml``) and the output's tail.
    """
    env = dict(env)
    if where is not None:
        env["PYTHONPATH"] = ":".join(p for p in (str(where), env.get("PYTHONPATH")) if p)
    res = run([python, "-c", _IMPORT_CODE, str(where or ""), *modules], env=env,
              cwd=where, check=False)
    if res.returncode != 0:
        out = (res.stderr + res.stdout).strip() or "(no output)"
        last = out.splitlines()[-1]
        found = [f"known problem [{d.id}]: {d.cause}\n  fix: {d.fix}" for d in diagnose(out)]
        raise CheckFailed(
            "\n".join([f"the built op does not import: {last}", *found,
                       "--- import output ---", tail(out, 15)]),
            hint="fix the op (see the error above); nothing was published or installed, so the "
                 "prefix keeps its previous build and the next run builds again")
