"""Frozen facts about this machine: driver, GPUs, compilers, CUDA toolkit.

Plain frozen dataclasses (no behaviour beyond formatting) so probes, the doctor,
``envbuild gpus`` and ``envbuild run`` all speak the same types, and tests can
build them by hand.  ``to_json`` gives the stable dicts the ``--json`` outputs print.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    """One physical GPU as the driver reports it.

    ``index`` is the driver's index, which follows PCI bus order (what nvidia-smi
    and NVML show, and what CUDA uses with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``).
    """

    index: int
    pci_bus_id: str  # normalised "00000000:4E:00.0"
    name: str  # the full product name, never truncated
    uuid: str
    compute_capability: str | None  # "8.9"; None when the driver cannot say
    memory_total_mib: int | None
    memory_used_mib: int | None
    utilization_pct: int | None
    process_count: int | None

    @property
    def sm(self) -> str | None:
        """``sm_89`` for compute capability 8.9."""
        cc = self.compute_capability
        return "sm_" + cc.replace(".", "") if cc else None

    @property
    def memory_used_fraction(self) -> float | None:
        """Used / total memory, or None when either is unknown."""
        if not self.memory_total_mib or self.memory_used_mib is None:
            return None
        return self.memory_used_mib / self.memory_total_mib

    def to_json(self) -> dict[str, Any]:
        """The object printed by ``gpus --json`` and ``doctor --json``."""
        data = asdict(self)
        data["sm"] = self.sm
        return data


@dataclass(frozen=True)
class DriverFacts:
    """What the GPU probe found: a driver and its GPUs, or why there is none."""

    backend: str  # "nvml", "nvidia-smi" or "none"
    driver_version: str | None = None  # "525.78.01"
    cuda_version: str | None = None  # newest CUDA the driver supports natively, "12.0"
    gpus: tuple[GpuInfo, ...] = ()
    problem: str | None = None  # why there are no driver facts, when there are none
    notes: tuple[str, ...] = ()  # lesser problems (e.g. process counts unavailable)

    @property
    def has_driver(self) -> bool:
        """True when a driver answered."""
        return self.driver_version is not None

    def gpu(self, index: int) -> GpuInfo | None:
        """The GPU with driver index ``index``."""
        return next((g for g in self.gpus if g.index == index), None)

    def to_json(self) -> dict[str, Any]:
        """Stable JSON object: backend, driver_version, cuda_version, gpus, problem, notes."""
        return {
            "backend": self.backend,
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "gpus": [g.to_json() for g in self.gpus],
            "problem": self.problem,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class CompilerInfo:
    """A C/C++ compiler found on PATH (or named by $CC/$CXX)."""

    name: str  # "gcc", "g++", or the $CXX value
    path: str | None
    version: str | None  # "12.2.0"
    problem: str | None = None

    @property
    def major(self) -> int | None:
        """Major version number, e.g. 12."""
        if not self.version:
            return None
        head = self.version.split(".")[0]
        return int(head) if head.isdigit() else None


@dataclass(frozen=True)
class NvccInfo:
    """The nvcc on PATH and what it really is once wrappers and symlinks are followed."""

    found: bool
    path: str | None = None  # what PATH gives, e.g. /usr/local/bin/nvcc
    real_path: str | None = None  # the real compiler, e.g. /usr/local/cuda-13.0/bin/nvcc
    toolkit_root: str | None = None  # from nvcc's own `#$ TOP=`, e.g. /usr/local/cuda-13.0
    version: str | None = None  # "13.0.88"
    release: str | None = None  # "13.0"
    via: tuple[str, ...] = ()  # how it was resolved: "symlink", "wrapper script"
    problem: str | None = None

    @property
    def is_wrapper(self) -> bool:
        """True when PATH's nvcc is not the compiler itself."""
        return bool(self.path and self.real_path and self.path != self.real_path)


@dataclass(frozen=True)
class CudaHomeInfo:
    """``CUDA_HOME`` (or ``CUDA_PATH``) and whether it holds a toolkit."""

    variable: str | None  # which variable was set
    value: str | None
    exists: bool = False
    nvcc_release: str | None = None  # release of $CUDA_HOME/bin/nvcc, if any


@dataclass(frozen=True)
class TorchInfo:
    """The torch inside an environment prefix (probed with that prefix's python)."""

    prefix: str
    version: str | None = None
    cuda: str | None = None  # torch.version.cuda, "11.7"
    arch_list: tuple[str, ...] = ()  # ("sm_37", ..., "sm_86")
    problem: str | None = None


@dataclass(frozen=True)
class HostFacts:
    """Everything the doctor knows about this machine."""

    driver: DriverFacts
    gcc: CompilerInfo
    gxx: CompilerInfo
    cxx_env: CompilerInfo | None  # $CXX, when set (conda compiler activation sets it)
    glibc: str | None  # "2.36"
    cuda_home: CudaHomeInfo
    nvcc: NvccInfo
    torch: TorchInfo | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON object for ``doctor --json`` (the ``host`` key)."""
        return {
            "driver": self.driver.to_json(),
            "gcc": asdict(self.gcc),
            "gxx": asdict(self.gxx),
            "cxx_env": asdict(self.cxx_env) if self.cxx_env else None,
            "glibc": self.glibc,
            "cuda_home": asdict(self.cuda_home),
            "nvcc": {**asdict(self.nvcc), "via": list(self.nvcc.via)},
            "torch": ({**asdict(self.torch), "arch_list": list(self.torch.arch_list)}
                      if self.torch else None),
        }
