"""The sanity kinds an op may name (``sanity:`` in a spec) — the one list of them.

Standard library only: ``run_checks.py`` (run by the PREFIX's python) imports it from
beside itself, and the command line takes its ``--check`` choices from it.  Each kind's
checks are registered in ``run_checks.KERNELS`` under the same name; every op gets its
import check whatever its kind.
"""

from __future__ import annotations

# kind -> (the module its op provides by default, what the kind checks)
KINDS: dict[str, tuple[str | None, str]] = {
    "msdeformattn": ("MultiScaleDeformableAttention",
                     "import; forward (float64, float32) and gradcheck against envbuild's "
                     "PyTorch reference on each GPU"),
    # an MSDeformAttn op with a CPU kernel (the demo's): no default module, since the family's
    # CUDA-only op has the same module name; only an op whose spec names this kind gets it
    "msdeformattn-cpu": (None, "import; forward (float64, float32) and gradcheck against "
                               "envbuild's PyTorch reference on the CPU, on every machine"),
    "detectron2": ("detectron2._C", "import; box_iou_rotated on each GPU equals the CPU path"),
    "import": (None, "the op's modules import (after torch), and from where"),
}

# kinds whose kernel checks run on the CPU (with or without a GPU), not on each GPU
CPU_KINDS: frozenset[str] = frozenset({"msdeformattn-cpu"})
