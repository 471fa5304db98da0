"""``envbuild doctor``: what this machine can run and build, as findings with fixes.

Without a spec it describes the machine: the driver and the CUDA versions it can
run, every GPU, CUDA_HOME, the nvcc on PATH and what it really is, gcc, and the
env's torch when a prefix is known.  With a spec it also resolves the spec for
the detected GPUs and driver and checks each GPU's arch against the build's arch
list and the toolkit, the driver floor and the compiler.

Exit status (decided here, applied by the CLI): a machine report always exits 0,
even on a machine without a GPU or driver; with a SPEC, a FAIL among the spec's
findings exits 1.  Machine findings (e.g. the system nvcc) never fail a spec: the
env brings its own toolkit and compiler.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.doctor.checks import (
    CudaSupport,
    Finding,
    Knowledge,
    arch_verdict,
    cuda_support,
    gpu_cc,
    toolchain_findings,
)
from builder.host import GpuProbe, HostFacts, probe_host


@dataclass(frozen=True)
class DoctorRequest:
    """What to check: the machine, optionally against a spec and a CUDA version."""

    spec: Path | None = None
    cuda: str | None = None
    prefix: Path | None = None  # an env whose torch to compare; default $CONDA_PREFIX


@dataclass(frozen=True)
class DoctorReport:
    """The doctor's answer."""

    host: HostFacts
    support: CudaSupport | None
    findings: tuple[Finding, ...]  # about the machine itself
    spec: str | None = None
    spec_findings: tuple[Finding, ...] = ()  # about SPEC on this machine
    resolution: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """True when a spec was checked and one of its findings FAILs (exit 1)."""
        return self.spec is not None and any(f.level == "FAIL" for f in self.spec_findings)

    def to_json(self) -> dict[str, Any]:
        """``{"host", "cuda_support", "findings", "spec_findings", "spec", "resolution", "ok"}``."""
        return {
            "host": self.host.to_json(),
            "cuda_support": list(self.support.lines) if self.support else [],
            "findings": [f.to_json() for f in self.findings],
            "spec_findings": [f.to_json() for f in self.spec_findings],
            "spec": self.spec,
            "resolution": self.resolution,
            "ok": not self.failed,
        }


def run_doctor(req: DoctorRequest, *, probes: Sequence[GpuProbe] | None = None,
               env: Mapping[str, str] | None = None,
               know: Knowledge | None = None) -> DoctorReport:
    """Probe the host, check it, and (with a spec) check the spec against it."""
    from builder.doctor.matrix import MatrixKnowledge

    source = env if env is not None else os.environ
    knowledge: Knowledge = know if know is not None else MatrixKnowledge()
    prefix = req.prefix or (Path(source["CONDA_PREFIX"]) if source.get("CONDA_PREFIX") else None)
    host = probe_host(probes=probes, env=source, prefix=prefix)
    drv = host.driver
    support = (cuda_support(drv.driver_version, drv.cuda_version, knowledge)
               if drv.driver_version else None)
    findings = [*driver_findings(host, support, knowledge),
                *toolchain_findings(host, knowledge), *torch_findings(host, knowledge)]
    if req.spec is None:
        return DoctorReport(host=host, support=support, findings=tuple(findings))
    from builder.doctor.spec import spec_findings

    extra, resolution = spec_findings(req.spec, req.cuda, host, knowledge)
    return DoctorReport(host=host, support=support, findings=tuple(findings),
                        spec=str(req.spec), spec_findings=tuple(extra), resolution=resolution)


def driver_findings(host: HostFacts, support: CudaSupport | None,
                    know: Knowledge) -> list[Finding]:
    """The driver, what CUDA it runs, and one line per GPU."""
    drv = host.driver
    if not drv.has_driver:
        return [Finding("WARN", "driver",
                        f"no NVIDIA driver or GPU found ({_no_path(drv.problem)})",
                        "fine for building with an explicit arch list; to run on a GPU, "
                        "use a machine with the NVIDIA driver (nvidia-smi must work)")]
    native = drv.cuda_version or "?"
    out = [Finding("OK", "driver",
                   f"driver {drv.driver_version} (CUDA {native}) via {drv.backend}")]
    out.extend(Finding("WARN", "driver", note) for note in drv.notes)
    if not drv.gpus:
        out.append(Finding("WARN", "gpus", "the driver lists no GPUs",
                           "check `nvidia-smi -L`; a GPU may be hidden by the container"))
    for g in drv.gpus:
        cc = gpu_cc(g, know)
        mem = (f"{g.memory_used_mib}/{g.memory_total_mib} MiB used"
               if g.memory_total_mib is not None else "memory ?")
        util = f"{g.utilization_pct}%" if g.utilization_pct is not None else "?"
        procs = g.process_count if g.process_count is not None else "?"
        line = (f"GPU {g.index}: {g.name} [{g.pci_bus_id}] CC {cc or '?'}, {mem}, "
                f"util {util}, {procs} process(es)")
        if cc is None:
            out.append(Finding("WARN", f"gpu {g.index}", line + " (compute capability unknown)",
                               "upgrade the driver or add the GPU to the matrix"))
        else:
            out.append(Finding("OK", f"gpu {g.index}", line))
    return out


def _no_path(text: str | None) -> str:
    """A probe's problem without the PATH it searched (the JSON report keeps it once)."""
    import re

    return re.sub(r" on PATH \([^)]*\)", " on PATH", text or "")


def torch_findings(host: HostFacts, know: Knowledge) -> list[Finding]:
    """The env's torch against the nvcc on PATH and each GPU."""
    t = host.torch
    if t is None:
        return []
    if t.problem or not t.version:
        return [Finding("WARN", "torch", f"torch in {t.prefix}: {t.problem}",
                        "install the env: envbuild install lockfiles/NAME-cuXY.conda-lock.yml")]
    out = [Finding("OK", "torch", f"torch {t.version} (CUDA {t.cuda or 'cpu'}) in {t.prefix}")]
    nvcc = host.nvcc.release
    if t.cuda and nvcc:
        if t.cuda.split(".")[0] != nvcc.split(".")[0]:
            out.append(Finding("FAIL", "torch",
                               f"torch is built for CUDA {t.cuda} but nvcc on PATH is {nvcc}: "
                               "extension builds stop with a CUDA version mismatch",
                               f"put a CUDA {t.cuda} nvcc first on PATH (activate the env)"))
        elif t.cuda != nvcc:
            out.append(Finding("WARN", "torch",
                               f"torch CUDA {t.cuda} vs nvcc {nvcc}: minor mismatch "
                               "(torch only warns)", "prefer the nvcc matching torch"))
    for g in host.driver.gpus:
        cc = gpu_cc(g, know)
        if cc and t.arch_list:
            level, why = arch_verdict(cc, t.arch_list)
            out.append(Finding(level, f"gpu {g.index}", f"torch on {g.name}: {why}",
                               None if level == "OK" else
                               "install a torch build whose arch list covers this GPU"))
    return out
