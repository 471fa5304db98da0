"""Benchmark op builds: one arch vs torch's default arch list, object reuse, store hits.

    .venv/bin/python bench/bench_build.py [--op tests/data/ops/msda] [--repeats 5] [--arch 9.0]

Each timed cold build uses a fresh store and a fresh, empty compiler cache (so it really
compiles) and a throwaway prefix layered on .venv (installs never touch .venv).  Then,
with the compiler cache the one-arch builds left behind (new stores, so the op really
builds again in a fresh build dir):

* an arch-list-only change: the op for torch's list (host objects reused);
* a teammate's first build: the same arch in a new store (every object reused).

Writes bench/results/build.json.  Goals: default-list build / one-arch build >= 3x;
unchanged rebuild (store hit) <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import row, write_results  # noqa: E402
from builder.opbuild.ops import OpBuildRequest, build_op  # noqa: E402
from builder.opbuild.store import Store  # noqa: E402
from tests.helpers.prefix import layered_venv  # noqa: E402

# torch's own arch list for its cu130 wheels (compat-facts 4c)
TORCH_DEFAULT = ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0+PTX")


def timed_build(op: Path, prefix: Path, arch: tuple[str, ...], store: Path,
                ccache_dir: Path) -> tuple[float, float, str]:
    """(wall seconds, compile-step seconds, ccache summary) of one build."""
    os.environ["ENVBUILD_CCACHE_DIR"] = str(ccache_dir)
    start = time.perf_counter()
    res = build_op(OpBuildRequest(name=op.name, source_dir=op, prefix=prefix, arch_list=arch),
                   store=Store(store))
    wall = time.perf_counter() - start
    step = next(s for s in res.steps if s.name == "compile")
    assert not res.cache_hit
    return wall, step.seconds, step.detail


def reuse_rows(op: Path, prefix: Path, one: tuple[str, ...], root: Path, repeats: int,
               cmd: str) -> list[dict[str, object]]:
    """Builds in new stores that find the one-arch build's objects in the compiler cache.

    They run as another user would: their own ENVBUILD_HOME (the store pins a key to the
    wheel first published under it, and these builds publish the same keys again).
    """
    home = os.environ.get("ENVBUILD_HOME")
    os.environ["ENVBUILD_HOME"] = str(root / "teammate-home")
    rows: list[dict[str, object]] = []
    for label, arch in (("arch list changed to torch's list", TORCH_DEFAULT),
                        ("teammate's first build, same arch", one)):
        runs = [timed_build(op, prefix, arch, root / f"store-reuse-{len(rows)}-{i}",
                            root / f"ccache-one_arch-{i}") for i in range(repeats)]
        wall = statistics.median(r[0] for r in runs)
        comp = statistics.median(r[1] for r in runs)
        rows.append(row(f"rebuild, {label} (compiler cache warm)", wall, "s", runs=repeats,
                        command=cmd, note=f"compile step {comp:.1f} s; "
                        f"{runs[0][2] or 'ccache not found'}"))
    if home is None:
        os.environ.pop("ENVBUILD_HOME", None)
    else:
        os.environ["ENVBUILD_HOME"] = home
    return rows


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
        prefix = layered_venv(root / "prefix", base=args.base)
        runs: dict[str, list[tuple[float, float, str]]] = {"one_arch": [], "torch_default": []}
        for i in range(args.repeats):
            for label, arch in (("one_arch", one), ("torch_default", TORCH_DEFAULT)):
                runs[label].append(timed_build(args.op, prefix, arch, root / f"store-{label}-{i}",
                                               root / f"ccache-{label}-{i}"))
                print(f"{label} run {i}: {runs[label][-1][0]:.1f}s", file=sys.stderr)
        op_shown = str(args.op.relative_to(REPO)) if args.op.is_relative_to(REPO) else str(args.op)
        reuse = reuse_rows(args.op, prefix, one, root, args.repeats,
                           f".venv/bin/python bench/bench_build.py --op {op_shown} "
                           f"--repeats {args.repeats}")
        hits = []
        for _ in range(max(5, args.repeats)):
            start = time.perf_counter()
            res = build_op(OpBuildRequest(name=args.op.name, source_dir=args.op, prefix=prefix,
                                          arch_list=one), store=Store(root / "store-one_arch-0"))
            hits.append(time.perf_counter() - start)
            assert res.cache_hit
    med = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    comp = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    op = str(args.op.relative_to(REPO)) if args.op.is_relative_to(REPO) else str(args.op)
    cmd = f".venv/bin/python bench/bench_build.py --op {op} --repeats {args.repeats}"
    rows = [
        row(f"build {op} for {';'.join(one)}, cold", med["one_arch"], "s", runs=args.repeats,
            command=cmd, note=f"compile step {comp['one_arch']:.1f} s; empty compiler cache"),
        row(f"build {op} for torch's list {';'.join(TORCH_DEFAULT)}, cold",
            med["torch_default"], "s", runs=args.repeats, command=cmd,
            note=f"compile step {comp['torch_default']:.1f} s; nvcc --threads"),
        row("torch's list / one arch", med["torch_default"] / med["one_arch"], "x", goal=3,
            goal_op=">=", runs=args.repeats, command=cmd, note="same run"),
        row("unchanged rebuild (cache hit)", statistics.median(hits), "s", goal=1,
            runs=len(hits), command=cmd),
        *reuse,
    ]
    write_results("build", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
