"""Shared helpers for the benchmark scripts: timing, machine facts, result files.

Every script writes ``bench/results/<name>.json``::

    {"name": ..., "machine": {...}, "date": "...",
     "rows": [{"metric", "value", "unit", "goal", "met", "runs", "command", "note"}]}

``bench/run.py`` runs them all and renders BENCHMARKS.md from these files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
VENV_BIN = Path(sys.executable).parent


def envbuild_cmd() -> list[str]:
    """How to invoke the CLI from the running interpreter."""
    exe = VENV_BIN / "envbuild"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "builder"]


def median_seconds(fn: Callable[[], object], runs: int = 5,
                   warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall seconds of ``fn`` over ``runs`` runs after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def run_quiet(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, failing loudly (a benchmark of a failing command is meaningless)."""
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if out.returncode != 0:
        raise SystemExit(f"benchmark command failed ({out.returncode}): {' '.join(cmd)}\n"
                         f"{out.stderr[-2000:]}")
    return out


def machine() -> dict[str, Any]:
    """The facts that make a figure comparable."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib,
            "python": platform.python_version(), "os": platform.platform()}


def row(metric: str, value: float, unit: str, *, goal: float | None = None,
        goal_op: str = "<=", runs: int = 1, command: str = "", note: str = "") -> dict[str, Any]:
    """One result row; ``met`` is computed, never asserted."""
    met = None
    if goal is not None:
        met = value <= goal if goal_op == "<=" else value >= goal
    return {"metric": metric, "value": round(value, 4), "unit": unit,
            "goal": f"{goal_op} {goal:g} {unit}" if goal is not None else "",
            "met": met, "runs": runs, "command": command, "note": note}


def write_results(name: str, rows: list[dict[str, Any]]) -> Path:
    """Write ``bench/results/<name>.json`` and print the rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "machine": machine(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "rows": rows}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    for r in rows:
        status = {True: "meets goal", False: "MISSES goal", None: ""}[r["met"]]
        print(f"{name}: {r['metric']}: {r['value']} {r['unit']} {r['goal']} {status}")
    return path
