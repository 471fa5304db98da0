"""GPU probes: NVML (nvidia-ml-py) and nvidia-smi, behind one Protocol.

Each backend's ``probe()`` returns :class:`DriverFacts` or raises
:class:`ProbeUnavailable` saying why it cannot answer (no library, no
executable, driver not loaded).  :func:`detect_driver` tries the backends of
:data:`GPU_PROBES` in order and, when none answers, returns "no driver" facts
with every reason: it never raises, so the doctor works on a machine without a GPU.

Order: NVML first (full names, exact numbers, no parsing), then nvidia-smi.
When ``ENVBUILD_NVIDIA_SMI`` names an executable, only nvidia-smi is used: the
user (or a test) chose that executable explicitly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from builder.errors import EnvbuildError
from builder.host.models import DriverFacts, GpuInfo
from builder.host.smi import (
    APPS_FIELDS,
    QUERY_FIELDS,
    QUERY_FIELDS_NO_CC,
    SmiParseError,
    normalize_bus_id,
    parse_banner,
    parse_compute_apps,
    parse_query_gpu,
)
from builder.util import cmd

SMI_ENV = "ENVBUILD_NVIDIA_SMI"
SMI_TIMEOUT = 30.0


class ProbeUnavailable(Exception):
    """This backend cannot answer on this machine; the message says why."""


class GpuProbe(Protocol):
    """A source of driver and GPU facts."""

    name: str

    def probe(self) -> DriverFacts:
        """Driver facts, or raise :class:`ProbeUnavailable`."""
        ...


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlProbe:
    """Driver facts through NVML (``pynvml`` from nvidia-ml-py); ``nvml`` is injectable."""

    name = "nvml"

    def __init__(self, nvml: Any = None) -> None:
        self._nvml = nvml

    def _module(self) -> Any:
        if self._nvml is not None:
            return self._nvml
        try:
            import pynvml
        except ImportError as exc:
            raise ProbeUnavailable(f"nvidia-ml-py is not installed ({exc})") from None
        return pynvml

    def probe(self) -> DriverFacts:
        """Initialise NVML, read everything, shut NVML down again."""
        nvml = self._module()
        try:
            nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded...
            raise ProbeUnavailable(f"NVML: {exc}") from None
        try:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
            cuda = _cuda_from_int(_call(nvml, "nvmlSystemGetCudaDriverVersion_v2",
                                        "nvmlSystemGetCudaDriverVersion"))
            count = int(nvml.nvmlDeviceGetCount())
            gpus = tuple(self._gpu(nvml, i) for i in range(count))
        except ProbeUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any NVML failure: let nvidia-smi try
            raise ProbeUnavailable(f"NVML query failed: {exc}") from None
        finally:
            with contextlib.suppress(Exception):  # shutting down is best effort
                nvml.nvmlShutdown()
        return DriverFacts(backend=self.name, driver_version=driver, cuda_version=cuda,
                           gpus=tuple(sorted(gpus, key=lambda g: g.pci_bus_id)))

    def _gpu(self, nvml: Any, i: int) -> GpuInfo:
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        mem = _optional(lambda: nvml.nvmlDeviceGetMemoryInfo(h))
        util = _optional(lambda: nvml.nvmlDeviceGetUtilizationRates(h))
        cc = _optional(lambda: nvml.nvmlDeviceGetCudaComputeCapability(h))
        procs = _optional(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(h))
        return GpuInfo(
            index=i,
            pci_bus_id=normalize_bus_id(_text(nvml.nvmlDeviceGetPciInfo(h).busId)),
            name=_text(nvml.nvmlDeviceGetName(h)),
            uuid=_text(nvml.nvmlDeviceGetUUID(h)),
            compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
            memory_total_mib=int(mem.total) // (1024 * 1024) if mem else None,
            memory_used_mib=int(mem.used) // (1024 * 1024) if mem else None,
            utilization_pct=int(util.gpu) if util else None,
            process_count=len(procs) if procs is not None else None,
        )


def _call(module: Any, *names: str) -> Any:
    for name in names:
        fn = getattr(module, name, None)
        if fn is not None:
            return fn()
    return None


def _optional(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a value the GPU does not support is just unknown
        return None


def _cuda_from_int(value: Any) -> str | None:
    if not isinstance(value, int) or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


class NvidiaSmiProbe:
    """Driver facts from ``nvidia-smi`` CSV queries (the executable is injectable)."""

    name = "nvidia-smi"

    def __init__(self, executable: str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        source = env if env is not None else os.environ
        self.executable = executable or source.get(SMI_ENV) or "nvidia-smi"

    def _run(self, *args: str) -> str:
        try:
            done = cmd.run([self.executable, *args], check=False, timeout=SMI_TIMEOUT)
        except EnvbuildError as exc:  # not found, not executable, timed out
            raise ProbeUnavailable(exc.message) from None
        if done.returncode != 0:
            out = (done.stdout + "\n" + done.stderr).strip()
            first = out.splitlines()[0] if out else "(no output)"
            raise ProbeUnavailable(f"{self.executable} exited with {done.returncode}: {first}")
        return done.stdout

    def probe(self) -> DriverFacts:
        """Query GPUs, then the banner (CUDA version), then compute apps (process counts)."""
        gpus, driver = self._query_gpus()
        notes: list[str] = []
        cuda: str | None = None
        try:
            banner_driver, cuda = parse_banner(self._run())
            driver = driver or banner_driver
        except ProbeUnavailable as exc:
            notes.append(f"CUDA version unknown: {exc}")
        try:
            counts = parse_compute_apps(self._run(
                "--query-compute-apps=" + ",".join(APPS_FIELDS), "--format=csv,noheader,nounits"))
            gpus = [replace(g, process_count=counts.get(g.pci_bus_id, 0)) for g in gpus]
        except ProbeUnavailable as exc:
            notes.append(f"process counts unknown: {exc}")
        return DriverFacts(backend=self.name, driver_version=driver, cuda_version=cuda,
                           gpus=tuple(gpus), notes=tuple(notes))

    def _query_gpus(self) -> tuple[list[GpuInfo], str | None]:
        for fields in (QUERY_FIELDS, QUERY_FIELDS_NO_CC):
            try:
                out = self._run("--query-gpu=" + ",".join(fields),
                                "--format=csv,noheader,nounits")
            except ProbeUnavailable as exc:
                if fields is QUERY_FIELDS and "compute_cap" in str(exc):
                    continue  # an old driver without the compute_cap field
                raise
            try:
                return parse_query_gpu(out, fields)
            except SmiParseError as exc:
                raise ProbeUnavailable(f"could not read {self.executable} output: {exc}") from None
        raise ProbeUnavailable("nvidia-smi answered no GPU query")  # pragma: no cover


# name -> factory; the order is the default probing order
GPU_PROBES: dict[str, Callable[[], GpuProbe]] = {
    "nvml": NvmlProbe,
    "nvidia-smi": NvidiaSmiProbe,
}


def default_probes(env: Mapping[str, str] | None = None) -> list[GpuProbe]:
    """The probes to try on this machine, in order (read at call time, never import time)."""
    source = env if env is not None else os.environ
    if source.get(SMI_ENV):
        return [NvidiaSmiProbe(env=source)]
    return [factory() for factory in GPU_PROBES.values()]


def detect_driver(probes: Sequence[GpuProbe] | None = None) -> DriverFacts:
    """The first answer of ``probes``; "no driver" facts with every reason if none answers."""
    reasons: list[str] = []
    for probe in probes if probes is not None else default_probes():
        try:
            return probe.probe()
        except ProbeUnavailable as exc:
            reasons.append(f"{probe.name}: {exc}")
    return DriverFacts(backend="none",
                       problem="; ".join(reasons) or "no GPU probe configured")
