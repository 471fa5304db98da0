"""Choosing GPUs for ``envbuild run`` and the environment that makes the choice stick.

Why the environment needs two variables: CUDA numbers devices FASTEST_FIRST by
default, while nvidia-smi (and NVML) number them by PCI bus id, so
``CUDA_VISIBLE_DEVICES=1`` can select a different card than nvidia-smi's "GPU 1".
Setting ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes both agree.  Inside the program,
the chosen devices are renumbered from 0 (``cuda:0`` is the first chosen GPU);
detectron2's launcher then gives each worker ``cuda:<local_rank>`` of those.

``auto`` picks the least-loaded GPU: lowest used-memory fraction plus
utilisation, then fewest processes, then lowest index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from builder.errors import UsageError
from builder.host.models import DriverFacts, GpuInfo


@dataclass(frozen=True)
class Assignment:
    """One chosen physical GPU and the device index the program will see."""

    gpu: GpuInfo
    visible_index: int  # cuda:<visible_index> inside the program


@dataclass(frozen=True)
class RunPlan:
    """What ``envbuild run`` will exec: argv, environment and the device mapping."""

    argv: tuple[str, ...]
    env: dict[str, str]
    assignments: tuple[Assignment, ...]
    note: str | None = None  # e.g. why CUDA_VISIBLE_DEVICES was left alone


def load_score(gpu: GpuInfo) -> tuple[float, int, int]:
    """Sort key for ``auto``: lower is less loaded."""
    mem = gpu.memory_used_fraction
    util = gpu.utilization_pct
    busy = (mem if mem is not None else 1.0) + (util / 100 if util is not None else 1.0)
    return (busy, gpu.process_count or 0, gpu.index)


def least_loaded(gpus: Sequence[GpuInfo]) -> GpuInfo:
    """The GPU ``auto`` picks."""
    return min(gpus, key=load_score)


def parse_selection(text: str, facts: DriverFacts) -> list[GpuInfo]:
    """``auto``, ``all`` or a comma list of driver indices (``0,2``) -> GPUs, in that order."""
    gpus = list(facts.gpus)
    valid = ", ".join(f"{g.index} ({g.name})" for g in gpus) or "none"
    choice = text.strip().lower()
    if choice == "auto":
        return [least_loaded(gpus)]
    if choice == "all":
        return gpus
    chosen: list[GpuInfo] = []
    for part in (p.strip() for p in choice.split(",")):
        gpu = facts.gpu(int(part)) if part.isdigit() else None
        if gpu is None:
            raise UsageError(
                f"--gpus {text!r}: {part!r} is not a GPU index on this machine",
                hint=f"valid GPU indices: {valid}; or use --gpus auto")
        if gpu in chosen:
            raise UsageError(f"--gpus {text!r}: GPU {part} is listed twice")
        chosen.append(gpu)
    if not chosen:
        raise UsageError("--gpus is empty", hint=f"valid GPU indices: {valid}")
    return chosen


def plan_run(command: Sequence[str], selection: str, facts: DriverFacts,
             environ: Mapping[str, str]) -> RunPlan:
    """The environment and device mapping for running ``command`` on ``selection``."""
    if not command:
        raise UsageError("no command given", hint="usage: envbuild run --gpus auto -- CMD ...")
    env = dict(environ)
    if not facts.gpus:
        if selection.strip().lower() != "auto":
            raise UsageError(f"--gpus {selection}: this machine has no usable GPU",
                             hint=f"the GPU probe said: {facts.problem or 'no GPUs listed'}")
        return RunPlan(argv=tuple(command), env=env, assignments=(),
                       note="no GPU found; CUDA_VISIBLE_DEVICES left unchanged "
                            f"({facts.problem or 'the driver lists no GPUs'})")
    chosen = parse_selection(selection, facts)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g.index) for g in chosen)
    return RunPlan(argv=tuple(command), env=env,
                   assignments=tuple(Assignment(g, i) for i, g in enumerate(chosen)))


def describe(plan: RunPlan) -> list[str]:
    """Human lines for stderr: the variables set and physical GPU -> cuda:N."""
    if not plan.assignments:
        return [f"envbuild run: {plan.note}"] if plan.note else []
    lines = ["envbuild run: CUDA_DEVICE_ORDER=PCI_BUS_ID "
             f"CUDA_VISIBLE_DEVICES={plan.env['CUDA_VISIBLE_DEVICES']}"]
    for a in plan.assignments:
        g = a.gpu
        mem = (f", {g.memory_used_mib}/{g.memory_total_mib} MiB used"
               if g.memory_total_mib is not None else "")
        util = f", {g.utilization_pct}% busy" if g.utilization_pct is not None else ""
        lines.append(f"  GPU {g.index} {g.name} [{g.pci_bus_id}{mem}{util}]"
                     f" -> cuda:{a.visible_index}")
    return lines
