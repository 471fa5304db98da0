"""envbuild's GPU-visibility shim for a build's ``setup.py`` (see builder/opbuild/gpugate.py).

Put on PYTHONPATH of the compile step only, as ``sitecustomize``.  When (and only when)
``ENVBUILD_GPU_GATE`` is ``visible`` and a process imports ``torch.cuda``, the module's
``is_available`` is replaced by one that answers True, so a ``setup.py`` that refuses to
build without a visible GPU takes its CUDA branch.  Nothing else is changed: the arch list
comes from TORCH_CUDA_ARCH_LIST, and no other torch.cuda function is touched.  pip itself
never imports torch, so in practice only the setup.py process sees the shim.  A
sitecustomize that this one shadows is still run.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

_HERE = os.path.dirname(os.path.realpath(__file__))
_TARGET = "torch.cuda"


def _visible() -> bool:
    return True


def _patch(module: ModuleType) -> None:
    _visible.__wrapped__ = getattr(module, "is_available", None)  # type: ignore[attr-defined]
    _visible.__doc__ = "envbuild build shim: the setup.py GPU gate sees a device"
    setattr(module, "is_available", _visible)  # noqa: B010


class _Loader(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader) -> None:
        self._real = real

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._real.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader)
        return spec


def _chain() -> None:
    """Run the sitecustomize this file shadows, if the interpreter has one."""
    for entry in sys.path:
        if not entry or os.path.realpath(entry) == _HERE:
            continue
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [entry])
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return


if os.environ.get("ENVBUILD_GPU_GATE") == "visible":
    sys.meta_path.insert(0, _Finder())
_chain()
