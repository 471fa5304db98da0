"""Kernel sanity checks, run BY THE PREFIX'S PYTHON:
``python run_checks.py [--check KIND]... [--ops JSON]``.

``--ops`` lists the ops envbuild installed (from ``.envbuild/ops/*.json``): each gets its
import check and the kernel checks of its kind (``KERNELS``, one entry per kind of
``kinds.KINDS``).  A kernel kind whose default module is importable but not recorded is
still checked, as an unrecorded op.  Prints one JSON object: ``{"torch", "torch_cuda",
"devices", "checks": [...]}`` where each check is ``{"check", "device", "status":
PASS|FAIL|SKIPPED, "reason", "seconds", "op", "source", "commit"}``.
Kernel checks call the COMPILED ops directly (never a module that falls back to
PyTorch).  Without a visible GPU every CUDA kernel check is SKIPPED with the reason; the
kernel checks of a CPU kind (``kinds.CPU_KINDS``: an op built with a CPU kernel) run on the
CPU on every machine.
Imports only torch and the standard library (plus the op being checked).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msda_reference as ref  # noqa: E402
import torch  # noqa: E402
from kinds import CPU_KINDS, KINDS  # noqa: E402

CHANNELS = (2, 32, 64)  # per-head channel counts the forward checks cover


def _result(check: str, device: str | None, fn: Callable[[], str | None]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        reason = fn() or ""
        status = "PASS"
    except _Skip as exc:
        status, reason = "SKIPPED", str(exc)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a FAIL row
        status = "FAIL"
        reason = f"{type(exc).__name__}: {exc}".strip()[:800]
        if os.environ.get("ENVBUILD_SANITY_TRACE"):
            traceback.print_exc()
    return {"check": check, "device": device, "status": status, "reason": reason,
            "seconds": round(time.perf_counter() - start, 3)}


class _Skip(Exception):
    pass


def devices() -> tuple[list[dict[str, Any]], str | None]:
    """Visible GPUs (respecting CUDA_VISIBLE_DEVICES), or why there are none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if torch.version.cuda is None:
        return [], f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return [], ("no CUDA GPU visible (torch.cuda.is_available() is False"
                    + (f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "") + ")")
    out = []
    for i in range(torch.cuda.device_count()):
        cap = torch.cuda.get_device_capability(i)
        out.append({"index": i, "name": torch.cuda.get_device_name(i),
                    "capability": f"{cap[0]}.{cap[1]}"})
    return out, None


class MSDA(torch.autograd.Function):
    """Our own autograd wrapper around the compiled forward/backward."""

    @staticmethod
    def forward(ctx: Any, value: Any, shapes: Any, starts: Any, loc: Any, attn: Any,
                step: int) -> Any:
        import MultiScaleDeformableAttention as ext

        ctx.step = step
        ctx.save_for_backward(value, shapes, starts, loc, attn)
        return ext.ms_deform_attn_forward(value, shapes, starts, loc, attn, step)

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        import MultiScaleDeformableAttention as ext

        value, shapes, starts, loc, attn = ctx.saved_tensors
        gv, gl, ga = ext.ms_deform_attn_backward(value, shapes, starts, loc, attn,
                                                 grad.contiguous(), ctx.step)
        return gv, None, None, gl, ga, None


SHAPES = [(6, 8), (3, 4), (2, 2)]


def msda_forward(dev: str, dtype: torch.dtype, atol: float, rtol: float) -> str:
    worst = 0.0
    for d in CHANNELS:
        v, s, st, loc, a = ref.random_inputs(2, 2, d, 5, 3, SHAPES, dtype, dev, seed=d)
        got = MSDA.apply(v, s, st, loc, a, 64)
        want = ref.msda_fast(v.cpu().double(), s.cpu(), loc.cpu().double(), a.cpu().double())
        err = (got.cpu().double() - want).abs().max().item()
        torch.testing.assert_close(got.cpu().double(), want, atol=atol, rtol=rtol)
        worst = max(worst, err)
    return f"max abs error {worst:.2e} over channels {list(CHANNELS)}"


def msda_gradcheck(dev: str) -> str:
    for d in (2, 8):
        v, s, st, loc, a = ref.random_inputs(1, 2, d, 3, 2, [(4, 5), (2, 3)], torch.float64,
                                             dev, seed=10 + d)
        loc = loc.clamp(0.05, 0.95)  # keep off the zero-padding border where the map has kinks
        for t in (v, loc, a):
            t.requires_grad_(True)

        def fn(v_: Any, l_: Any, a_: Any, s: Any = s, st: Any = st) -> Any:
            return MSDA.apply(v_, s, st, l_, a_, 64)

        ok = torch.autograd.gradcheck(fn, (v, loc, a), eps=1e-6, atol=1e-5, rtol=1e-3)
        if not ok:
            raise AssertionError(f"gradcheck failed for channels={d}")
    return "gradcheck on value, sampling_loc, attn_weight (channels 2, 8)"


def detectron2_box_iou_rotated(dev: str) -> str:
    import detectron2._C as d2c  # registers torch.ops.detectron2 (TORCH_LIBRARY)

    op = getattr(getattr(torch.ops, "detectron2", None), "box_iou_rotated", None)
    op = op or getattr(d2c, "box_iou_rotated", None)  # older trees bind it with pybind only
    if op is None:
        raise AssertionError("detectron2._C has no box_iou_rotated (torch.ops or pybind)")
    gen = torch.Generator().manual_seed(0)
    boxes = torch.rand(16, 5, generator=gen) * torch.tensor([50, 50, 20, 20, 180.0])
    boxes[:, 2:4] += 1
    other = boxes + torch.rand(16, 5, generator=gen)
    want = op(boxes, other)
    got = op(boxes.to(dev), other.to(dev)).cpu()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    return "box_iou_rotated CUDA == CPU on 16x16 boxes"


def torch_matmul(dev: str) -> str:
    """torch itself runs on the GPU: a float32 and a float64 matmul agree with the CPU's."""
    gen = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-3), (torch.float64, 1e-10)):
        x = torch.randn(128, 128, generator=gen, dtype=dtype)
        want = x @ x
        got = (x.to(dev) @ x.to(dev)).cpu()
        torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    return "matmul on the GPU == CPU (float32, float64)"


def torch_cpu_sampling() -> str:
    """torch's CPU kernels (grid_sample, the batched products) against the formula, loop by loop.

    The env's torch computes multi-scale deformable attention with ``grid_sample`` and
    must agree with a transcription of the formula to float64 precision: a real
    comparison that needs no GPU and fails when torch's CPU kernels are wrong.
    """
    worst = 0.0
    for d, seed in ((2, 1), (5, 2)):
        v, s, _st, loc, a = ref.random_inputs(1, 2, d, 3, 2, [(4, 5), (2, 3)], torch.float64,
                                              "cpu", seed=seed)
        got = ref.msda_fast(v, s, loc, a)
        want = ref.msda_slow(v, s, loc, a)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
        worst = max(worst, (got - want).abs().max().item())
    return f"grid_sample path == formula loop, max abs error {worst:.1e} (float64, 2 shapes)"


def check_torch(gpus: list[dict[str, Any]], no_gpu: str | None) -> list[dict[str, Any]]:
    """Every env: torch's CPU kernels against the formula (always run), and torch on every
    visible GPU (no ops needed; SKIPPED without a GPU)."""
    rows = [_result("torch.cpu-sampling", "cpu", torch_cpu_sampling)]
    if no_gpu is not None:
        return rows + [{"check": "torch.matmul", "device": None, "status": "SKIPPED",
                        "reason": no_gpu, "seconds": 0.0}]
    return rows + [_result("torch.matmul",
                           f"cuda:{g['index']} ({g['name']}, sm_{g['capability']})",
                           functools.partial(torch_matmul, f"cuda:{g['index']}"))
                   for g in gpus]


def _msda_kernels() -> dict[str, Callable[[str], str]]:
    return {"forward-float64": lambda dv: msda_forward(dv, torch.float64, 1e-10, 1e-9),
            "forward-float32": lambda dv: msda_forward(dv, torch.float32, 1e-4, 1e-3),
            "gradcheck": msda_gradcheck}


# kind -> its kernel checks (name -> fn(device)); "import" has none beyond the import
KERNELS: dict[str, Callable[[], dict[str, Callable[[str], str]]]] = {
    "msdeformattn": _msda_kernels,
    "msdeformattn-cpu": _msda_kernels,  # the same comparisons, on the CPU (CPU_KINDS)
    "detectron2": lambda: {"box_iou_rotated": detectron2_box_iou_rotated},
    "import": dict,
}


def _tagged(row: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    return {**row, "op": op.get("op"), "source": op.get("source"), "commit": op.get("commit")}


def _import_row(kind: str, op: dict[str, Any]) -> dict[str, Any]:
    def do_import() -> str:
        where = []
        for name in op["modules"]:
            mod = importlib.import_module(name)
            where.append(f"{name} from {getattr(mod, '__file__', '?')}")
        return "imported " + "; ".join(where)

    name = f"{op['op']}.import" if kind == "import" else f"{kind}.import"
    return _tagged(_result(name, None, do_import), op)


def _cpu_row(check: str, fn: Callable[[str], str], imported: bool) -> dict[str, Any]:
    """One kernel check of a CPU kind: the op against the reference on the CPU."""
    if not imported:
        return {"check": check, "device": None, "status": "SKIPPED",
                "reason": "the op does not import (see the import check)", "seconds": 0.0}
    return _result(check, "cpu", functools.partial(fn, "cpu"))


def check_op(kind: str, op: dict[str, Any], gpus: list[dict[str, Any]],
             no_gpu: str | None) -> list[dict[str, Any]]:
    """The import check of one op, then its kind's kernel checks on every GPU (on the CPU
    for a CPU kind)."""
    rows = [_import_row(kind, op)]
    imported = rows[0]["status"] == "PASS"
    if kind in CPU_KINDS:
        return rows + [_tagged(_cpu_row(f"{kind}.{name}", fn, imported), op)
                       for name, fn in KERNELS[kind]().items()]
    for name, fn in KERNELS[kind]().items():
        if no_gpu is not None or not imported:
            why = no_gpu or "the op does not import (see the import check)"
            rows.append(_tagged({"check": f"{kind}.{name}", "device": None,
                                 "status": "SKIPPED", "reason": why, "seconds": 0.0}, op))
            continue
        for g in gpus:
            dev = f"cuda:{g['index']}"

            def run(fn: Callable[[str], str] = fn, dev: str = dev) -> str:
                with torch.cuda.device(dev):
                    out = fn(dev)
                    torch.cuda.synchronize()
                    return out

            rows.append(_tagged(_result(f"{kind}.{name}",
                                        f"{dev} ({g['name']}, sm_{g['capability']})", run), op))
    return rows


def plan(recorded: list[dict[str, Any]], wanted: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(kind, op) pairs to check: every recorded op (its kind, or "import"), and each kernel
    kind's default module when no recorded op has that kind but the module is importable
    (or the kind was asked for by name), unless a recorded op of a kernel kind provides that
    module: its own kind says what to check (a CPU-kernel op shares the CUDA op's name)."""
    out = []
    for op in recorded:
        kind = op.get("sanity") or "import"
        if kind not in KINDS:
            kind = "import"
        modules = op.get("modules") or ([KINDS[kind][0]] if KINDS[kind][0] else [])
        if modules and (not wanted or kind in wanted):
            out.append((kind, {**op, "modules": modules}))
    have = {k for k, _ in out}
    claimed = {m for k, op in out if k != "import" for m in op["modules"]}
    for kind, (module, _) in KINDS.items():
        if module is None or kind in have or module in claimed or (wanted and kind not in wanted):
            continue
        if kind in wanted or importlib.util.find_spec(module.split(".")[0]) is not None:
            owner = next((op for op in recorded if module in (op.get("modules") or [])),
                         {"op": None, "source": "not recorded by envbuild", "commit": None})
            out.append((kind, {**owner, "modules": [module]}))
    return out


def main(argv: list[str] | None = None) -> int:
    missing = sorted(set(KINDS) - set(KERNELS))
    if missing:
        raise SystemExit(f"no checks registered for sanity kind(s) {missing}")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="append", choices=sorted(KINDS), default=[])
    parser.add_argument("--ops", default="[]", help="JSON list of the recorded ops")
    args = parser.parse_args(argv)
    targets = plan(json.loads(args.ops), args.check)
    gpus, no_gpu = devices()
    rows: list[dict[str, Any]] = check_torch(gpus, no_gpu)
    for kind in args.check:
        if not any(k == kind for k, _ in targets):
            rows.append({"check": f"{kind}.import", "device": None, "status": "SKIPPED",
                         "reason": f"no op with sanity: {kind} is recorded in this prefix",
                         "seconds": 0.0, "op": None, "source": None, "commit": None})
    for kind, op in targets:
        rows += check_op(kind, op, gpus, no_gpu)
    kinds = list(dict.fromkeys(k for k, _ in targets)) or list(args.check)
    print(json.dumps({"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                      "python": sys.version.split()[0], "devices": gpus, "no_gpu_reason": no_gpu,
                      "kinds": kinds, "checks": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
