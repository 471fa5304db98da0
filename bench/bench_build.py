"""Benchmark op builds: one arch vs torch's default arch list, and an unchanged rebuild.

    .venv/bin/python bench/bench_build.py [--op tests/data/ops/msda] [--repeats 1] [--arch 9.0]

Each timed build uses a fresh store (so it really compiles) and a throwaway prefix
layered on .venv (installs never touch .venv).  Writes bench/results/build.json.
Goals: default-list build / one-arch build >= 3x; unchanged rebuild (cache hit) <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

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
    parser.add_argument("--repeats", type=int, default=1)
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
    result = {
        "op": str(args.op.relative_to(REPO)) if args.op.is_relative_to(REPO) else str(args.op),
        "one_arch": list(one), "torch_default": list(TORCH_DEFAULT), "repeats": args.repeats,
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "median_compile_step_s": {k: round(statistics.median(c for _, c in v), 2)
                                  for k, v in runs.items()},
        "speedup": round(med["torch_default"] / med["one_arch"], 2),
        "cache_hit_median_s": round(statistics.median(hits), 3),
        "goals": {"speedup>=3": med["torch_default"] / med["one_arch"] >= 3,
                  "cache_hit<=1s": statistics.median(hits) <= 1.0},
    }
    out = REPO / "bench" / "results" / "build.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
