"""Host facts: the GPUs, driver, compilers, glibc and CUDA toolkit of this machine.

Nothing is probed at import time.  :func:`probe_host` gathers everything; the
GPU part goes through the :class:`GpuProbe` backends in :data:`GPU_PROBES`
(NVML, then nvidia-smi), injectable for tests, and never raises on a machine
without a GPU or driver: it returns facts with ``backend="none"`` and a reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from builder.host.gpus import (
    GPU_PROBES,
    SMI_ENV,
    GpuProbe,
    NvidiaSmiProbe,
    NvmlProbe,
    ProbeUnavailable,
    default_probes,
    detect_driver,
)
from builder.host.models import (
    CompilerInfo,
    CudaHomeInfo,
    DriverFacts,
    GpuInfo,
    HostFacts,
    NvccInfo,
    TorchInfo,
)

__all__ = [
    "GPU_PROBES", "SMI_ENV", "CompilerInfo", "CudaHomeInfo", "DriverFacts", "GpuInfo",
    "GpuProbe", "HostFacts", "NvccInfo", "NvidiaSmiProbe", "NvmlProbe", "ProbeUnavailable",
    "TorchInfo", "default_probes", "detect_driver", "probe_host",
]


def probe_host(
    *,
    probes: Sequence[GpuProbe] | None = None,
    env: Mapping[str, str] | None = None,
    prefix: str | Path | None = None,
) -> HostFacts:
    """Everything the doctor reports; ``prefix`` adds the torch of that environment."""
    from builder.host import envtorch, toolchain

    source = env if env is not None else os.environ
    driver = detect_driver(probes if probes is not None else default_probes(source))
    return HostFacts(
        driver=driver,
        gcc=toolchain.compiler("gcc", env=source),
        gxx=toolchain.compiler("g++", env=source),
        cxx_env=toolchain.cxx_from_env(source),
        glibc=toolchain.glibc_version(),
        cuda_home=toolchain.cuda_home(source),
        nvcc=toolchain.nvcc_on_path(source),
        torch=envtorch.probe_torch(prefix) if prefix else None,
    )
