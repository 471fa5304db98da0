"""Run every benchmark script and render BENCHMARKS.md from bench/results/*.json.

    make bench                      # all of them
    .venv/bin/python bench/run.py resolve lock   # a subset, by name
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ["resolve", "lock", "install", "build", "reproducible"]


def main(argv: list[str]) -> int:
    wanted = argv or SCRIPTS
    failed = []
    for name in wanted:
        script = REPO / "bench" / f"bench_{name}.py"
        print(f"== bench_{name}.py", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=REPO).returncode != 0:
            failed.append(name)
    render()
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def render() -> None:
    """BENCHMARKS.md: one table row per metric, with machine, date and the command."""
    results = sorted((REPO / "bench" / "results").glob("*.json"))
    lines = [
        "# Benchmarks",
        "",
        "Medians of at least 5 runs unless the row says otherwise; ratios are measured in the",
        "same run. Regenerate everything with `make bench`, or one script with the command",
        "in its row. Goals come from the issues; a missed goal is shown, not hidden.",
        "",
        "| benchmark | metric | value | goal | met | runs | command | date | machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in results:
        data = json.loads(path.read_text())
        m = data.get("machine", {})
        mach = f"{m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('cpu', '')}"
        for r in data.get("rows", []):
            met = {True: "yes", False: "**no**", None: "—"}[r.get("met")]
            note = f" ({r['note']})" if r.get("note") else ""
            lines.append(
                f"| {data['name']} | {r['metric']}{note} | {r['value']} {r['unit']} | "
                f"{r.get('goal', '')} | {met} | {r.get('runs', '')} | `{r.get('command', '')}` | "
                f"{data.get('date', '')} | {mach} |"
            )
    lines += [
        "",
        "## Why the missed goals miss",
        "",
        "The rows of 2026-12-01 12:37-12:39 UTC were taken on a quiet 2-core machine (load",
        "average below 1); the build and reproducible rows are older and were taken under a",
        "load average of 5-9 (the same conda solve measured 175 ms then and 71 ms now).",
        "",
        "- **lock --refresh**: uv asks pypi.org for every index page again (about 80 pages",
        "  and 90 metadata files for mask2former); `uv pip compile` alone takes most of the",
        "  command in the same run, so the goal is bounded by the network, not by envbuild.",
        "- **install, whole command / cp -al** (goal 2x, 3.4x on the quiet machine): the",
        "  linking itself is 1.6x `cp -al` (the in-process row); the rest is the process",
        "  start-up (~0.14 s: the no-op install row) and `uv pip install --python",
        "  NEW/bin/python` of the pip layer (~0.1 s: uv probes the new interpreter and checks",
        "  every wheel's sha256). No conda-lock import is left on this path. The small env",
        "  misses in process too: 0.1 s of fixed work (activation, state, uv) against a",
        "  13 ms `cp -al` of 1935 files.",
        "- **resolve, cold** (goal 150 ms): the matrix is rebuilt from its shipped validated",
        "  snapshot without YAML or validation; what is left is start-up, measured with",
        "  `python -X importtime`: pydantic's schema machinery, imported when the first",
        "  model class is made (~40 ms), the matrix and resolution model classes (~15 ms),",
        "  the interpreter and click (~35 ms), ruamel and libyaml for the spec (~15 ms).",
        "- **build, torch's list / one arch**: with nvcc's arch passes in parallel",
        "  (`--threads`) the many-arch build gets cheaper, so this ratio goes down, not up;",
        "  the arch-only rebuild and the teammate's first build are the rows where object",
        "  reuse shows.",
        "",
        "## What --check-reproducible costs",
        "",
        "`envbuild build --check-reproducible` is the normal build (a store hit when it ran",
        "before) plus one more full build of every op in a fresh temp dir with nothing taken",
        "from the compiler cache, and a comparison of the two wheels member by member",
        "(milliseconds). So its cost is one uncached compile per op; the rows above put it",
        "beside the plain build in the same run.",
    ]
    (REPO / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
