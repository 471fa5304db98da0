"""What ``envbuild build --check-reproducible`` costs, measured on the whole command.

    .venv/bin/python bench/bench_reproducible.py [--spec tests/data/specs/msda-local.yaml]
                                                 [--repeats 3] [--arch 9.0]

Each repeat uses a fresh ENVBUILD_HOME (so the first command really compiles) and a
throwaway prefix layered on .venv.  Timed, in one run: the plain build (a store miss), the
same build again (a hit), and ``--check-reproducible`` (the hit, a second full build in a
fresh dir and the comparison).  The comparator alone is timed on the two wheels.
Writes bench/results/reproducible.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, envbuild_cmd, row, write_results  # noqa: E402
from builder.opbuild.reproducible import compare_wheels  # noqa: E402
from tests.helpers.prefix import layered_venv  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - start
    if out.returncode not in (0, 1):
        raise SystemExit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return elapsed, out


def one_round(spec: Path, arch: str, tmp: Path) -> dict[str, float]:
    env = {**os.environ, "ENVBUILD_HOME": str(tmp / "home")}
    env.pop("ENVBUILD_STORE", None)
    base = [*envbuild_cmd(), "build", str(spec), "--prefix", str(layered_venv(tmp / "p")),
            "--arch", arch]
    cold, _ = timed(base, env)
    hit, _ = timed(base, env)
    check, out = timed([*base, "--check-reproducible", "--json"], env)
    [op] = json.loads(out.stdout)["ops"]
    repro = op["reproducible"]
    stored = Path(op["wheel"])
    start = time.perf_counter()
    compare_wheels(stored, stored)
    compare = time.perf_counter() - start
    return {"cold": cold, "hit": hit, "check": check, "identical": float(repro["identical"]),
            "second_build": repro["seconds"], "compare": compare}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, default=Path("tests/data/specs/msda-local.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="9.0")
    args = parser.parse_args()
    rounds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="envbuild-bench-repro-") as tmp:
            rounds.append(one_round(args.spec, args.arch, Path(tmp)))
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    cmd = (f"envbuild build {args.spec} --prefix P --arch {args.arch} [--check-reproducible]"
           f"  # .venv/bin/python bench/bench_reproducible.py --repeats {args.repeats}")
    n = args.repeats
    rows = [
        row("envbuild build, store miss (compiles)", med["cold"], "s", runs=n, command=cmd),
        row("envbuild build, store hit", med["hit"], "s", runs=n, command=cmd),
        row("envbuild build --check-reproducible (hit + second build + compare)", med["check"],
            "s", runs=n, command=cmd),
        row("--check-reproducible / store miss (same run)", med["check"] / med["cold"], "x",
            runs=n, command=cmd),
        row("second builds identical to the stored wheel",
            sum(r["identical"] for r in rounds), f"of {n}", runs=n, command=cmd),
        row("wheel comparator alone (every member's sha256, the stored wheel against "
            "itself: the work of two)", med["compare"] * 1000, "ms",
            runs=n, command=cmd),
    ]
    write_results("reproducible", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
