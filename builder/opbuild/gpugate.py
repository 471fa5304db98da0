"""GPU-less builds of trees whose ``setup.py`` refuses to build without a visible GPU.

Many op trees decide between ``CUDAExtension`` and a refusal with
``torch.cuda.is_available()``, which is False on a build box, a CI runner or a login node
whatever ``FORCE_CUDA`` says.  The mechanism, called ``visible-gpu-shim``: the compile
step's PYTHONPATH starts with a directory holding envbuild's ``sitecustomize``
(``data/gpu_visible_sitecustomize.py``), armed by ``ENVBUILD_GPU_GATE=visible``; in a
process that imports ``torch.cuda`` (the setup.py process) it makes ``is_available``
answer True.  The arch list still comes from ``TORCH_CUDA_ARCH_LIST`` and nothing else in
torch is changed, so the tree compiles the sources and arches a GPU host would.

The shim is used only when the op's ``setup.py`` (or a top-level module of the op that
setup.py imports) calls ``cuda.is_available(``; it is then named in the build report and
in the store key (:func:`key_flag`), whether or not this host has a GPU, so the key never
depends on the host.  The import check and sanity run without it.  ``CUDA_HOME`` gates
need no shim: the build environment always sets ``CUDA_HOME`` to the checked toolkit.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from builder.models import Frozen

MECHANISM = "visible-gpu-shim"
VERSION = 1
SHIM = Path(__file__).parent / "data" / "gpu_visible_sitecustomize.py"
_GATE = re.compile(r"\bcuda\s*\.\s*is_available\s*\(")
_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", re.MULTILINE)


class GpuGate(Frozen):
    """Why the shim is used for one op: the files and lines that test for a GPU."""

    mechanism: str
    version: int
    found: tuple[str, ...]  # "setup.py:40"

    def key_flag(self) -> str:
        """What the store key records (``KeyInputs.flags``)."""
        return f"gpu-gate={self.mechanism}@{self.version}"

    def describe(self) -> str:
        return (f"{self.mechanism}@{self.version}: torch.cuda.is_available() answers True for "
                f"setup.py (gate at {', '.join(self.found)}); arch list and sources unchanged")


def _setup_files(source_dir: Path) -> list[Path]:
    """setup.py and the op's top-level modules it imports (``import x`` / ``from x import``)."""
    setup = source_dir / "setup.py"
    if not setup.is_file():
        return []
    text = setup.read_text(encoding="utf-8", errors="replace")
    names = set(_IMPORT.findall(text))
    helpers = [p for p in sorted(source_dir.glob("*.py"))
               if p.is_file() and p.stem in names and p.name != "setup.py"]
    return [setup, *helpers]


def find_gate(source_dir: Path) -> GpuGate | None:
    """The op's GPU gate, if setup.py (or a helper module it imports) tests
    ``torch.cuda.is_available()``."""
    found = []
    for path in _setup_files(source_dir):
        text = path.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            if _GATE.search(line.split("#", 1)[0]):
                found.append(f"{path.name}:{lineno}")
    if not found:
        return None
    return GpuGate(mechanism=MECHANISM, version=VERSION, found=tuple(found))


def gate_env(env: dict[str, str], work: Path) -> dict[str, str]:
    """``env`` with the shim armed: its directory first on PYTHONPATH (made under ``work``)."""
    shim_dir = work / "gpu-gate"
    shim_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHIM, shim_dir / "sitecustomize.py")
    python_path = [str(shim_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    return {**env, "PYTHONPATH": ":".join(python_path), "ENVBUILD_GPU_GATE": "visible"}
