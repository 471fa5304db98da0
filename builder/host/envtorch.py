"""The torch inside an environment prefix, read by that prefix's own python.

The arch list comes from ``torch._C._cuda_getArchFlags()`` (what
``torch.cuda.get_arch_list()`` returns on a GPU machine), which works without a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.errors import EnvbuildError
from builder.host.models import TorchInfo
from builder.util import cmd

_SCRIPT = """
import json, torch
flags = ""
try:
    flags = torch._C._cuda_getArchFlags() or ""
except Exception:
    pass
print(json.dumps({"version": torch.__version__, "cuda": torch.version.cuda,
                  "arch_list": flags.split()}))
"""
TIMEOUT = 180.0


def probe_torch(prefix: str | Path) -> TorchInfo:
    """Torch version, CUDA and arch list of ``prefix``; ``problem`` says why when unknown."""
    root = Path(prefix)
    python = root / "bin" / "python"
    if not python.exists():
        return TorchInfo(prefix=str(root), problem=f"no python at {python}")
    try:
        done = cmd.run([str(python), "-c", _SCRIPT], timeout=TIMEOUT)
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except EnvbuildError as exc:
        return TorchInfo(prefix=str(root), problem=f"cannot import torch: {exc.message}")
    except (ValueError, IndexError):
        return TorchInfo(prefix=str(root), problem="torch printed no version information")
    return TorchInfo(prefix=str(root), version=data.get("version"), cuda=data.get("cuda"),
                     arch_list=tuple(data.get("arch_list") or ()))


_FIND = """
import importlib.util, json, sys
print(json.dumps({n: importlib.util.find_spec(n) is not None for n in sys.argv[1:]}))
"""


def probe_modules(prefix: str | Path, names: tuple[str, ...]) -> dict[str, bool] | None:
    """Which of ``names`` the prefix's python can import (found, not imported); None if unknown."""
    python = Path(prefix) / "bin" / "python"
    if not names or not python.exists():
        return None
    try:
        done = cmd.run([str(python), "-c", _FIND, *names], timeout=TIMEOUT)
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (EnvbuildError, ValueError, IndexError):
        return None
    return {n: bool(data.get(n)) for n in names} if isinstance(data, dict) else None
