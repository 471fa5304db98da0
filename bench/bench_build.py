"""Benchmark op builds: one arch vs torch's default arch list, and an unchanged rebuild.

    .venv/bin/python bench/bench_build.py [--op tests/data/ops/msda] [--repeats 5] [--arch 9.0]

Each timed build uses a fresh store (so it really compiles) and a throwaway prefix
layered on .venv (installs never touch .venv).  Writes bench/results/build.json.
Goals: default-list build / one-arch build >= 3x; unchanged rebuild (cache hit) <= 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import row, write_results  # noqa: E402
from builder.build.ops import OpBuildRequest, build_op  # noqa: E402
from builder.build.store import Store  # noqa: E402
from builder.build.toolchain import prefix_facts  # noqa: E402

# torch's own arch list for its cu130 wheels (compat-facts 4c)
TORCH_DEFAULT = ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0+PTX")


def layered_prefix(root: Path, base: Path) -> Path:
    """A venv whose site-packages sees ``base``'s (torch) through a .pth file."""
    prefix = root / "prefix"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = prefix_facts(prefix).site_packages
    (site / "_envbuild_layer.pth").write_text(f"{prefix_facts(base).site_packages}\n")
    return prefix


def timed_build(op: Path, prefix: Path, arch: tuple[str, ...], store: Path) -> tuple[float, float]:
    """(wall seconds, compile-step seconds) of one build."""
    start = time.perf_counter()
    res = build_op(OpBuildRequest(name=op.name, source_dir=op, prefix=prefix, arch_list=arch),
                   store=Store(store))
    wall = time.perf_counter() - start
    compile_s = sum(s.seconds for s in res.steps if s.name == "compile")
    assert not res.cache_hit
    return wall, compile_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--op", type=Path, default=REPO / "tests" / "data" / "ops" / "msda")
    parser.add_argument("--arch", default="9.0")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--base", type=Path, default=REPO / ".venv")
    args = parser.parse_args()
    one = tuple(args.arch.split(";"))
    with tempfile.TemporaryDirectory(prefix="envbuild-bench-") as tmp:
        root = Path(tmp)
        prefix = layered_prefix(root, args.base)
        runs: dict[str, list[tuple[float, float]]] = {"one_arch": [], "torch_default": []}
        for i in range(args.repeats):
            for label, arch in (("one_arch", one), ("torch_default", TORCH_DEFAULT)):
                runs[label].append(timed_build(args.op, prefix, arch, root / f"store-{label}-{i}"))
                print(f"{label} run {i}: {runs[label][-1][0]:.1f}s", file=sys.stderr)
        hits = []
        for _ in range(max(5, args.repeats)):
            start = time.perf_counter()
            res = build_op(OpBuildRequest(name=args.op.name, source_dir=args.op, prefix=prefix,
                                          arch_list=one), store=Store(root / "store-one_arch-0"))
            hits.append(time.perf_counter() - start)
            assert res.cache_hit
    med = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    comp = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    op = str(args.op.relative_to(REPO)) if args.op.is_relative_to(REPO) else str(args.op)
    cmd = f".venv/bin/python bench/bench_build.py --op {op} --repeats {args.repeats}"
    rows = [
        row(f"build {op} for {';'.join(one)}", med["one_arch"], "s", runs=args.repeats,
            command=cmd, note=f"compile step {comp['one_arch']:.1f} s"),
        row(f"build {op} for torch's list {';'.join(TORCH_DEFAULT)}", med["torch_default"],
            "s", runs=args.repeats, command=cmd,
            note=f"compile step {comp['torch_default']:.1f} s"),
        row("torch's list / one arch", med["torch_default"] / med["one_arch"], "x", goal=3,
            goal_op=">=", runs=args.repeats, command=cmd, note="same run"),
        row("unchanged rebuild (cache hit)", statistics.median(hits), "s", goal=1,
            runs=len(hits), command=cmd),
    ]
    write_results("build", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
