"""Wall time of ``envbuild resolve envspecs/mask2former.yaml --cuda 11.7 --json``.

A real subprocess each run, like a user (interpreter start, imports, spec load, matrix,
resolve, JSON).  Three rows:

* repeat: the same command again (the CLI's memoized answer, see builder/cli/resolve.py);
* new request: a different ``--driver`` each run, so the resolver really runs, with the
  parsed-matrix cache warm;
* cold: a fresh, empty ``ENVBUILD_HOME`` each run (matrix YAML parsed, nothing cached).

Goals: <= 300 ms (issue 2); cold <= 150 ms (issue 13).

    .venv/bin/python bench/bench_resolve.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, envbuild_cmd, median_seconds, row, run_quiet, write_results  # noqa: E402

ARGS = ["resolve", "envspecs/mask2former.yaml", "--cuda", "11.7", "--json"]
GOAL_MS = 300.0
COLD_GOAL_MS = 150.0  # issue 13: a first run in a fresh ENVBUILD_HOME


def _samples(seconds: list[float]) -> str:
    return "samples ms: " + ", ".join(f"{s * 1000:.0f}" for s in seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="measured runs (at least 5)")
    runs = max(5, parser.parse_args().runs)
    cmd = [*envbuild_cmd(), *ARGS]
    shown = "envbuild " + " ".join(ARGS)
    with tempfile.TemporaryDirectory(prefix="envbuild-bench-") as tmp:
        env = {**os.environ, "ENVBUILD_HOME": str(Path(tmp) / "warm")}
        warm, warm_samples = median_seconds(lambda: run_quiet(cmd, cwd=REPO, env=env),
                                            runs=runs, warmup=1)
        counter = iter(range(10_000))

        def fresh() -> object:
            drv = ["--driver", f"525.60.{100 + next(counter)}"]
            return run_quiet([*cmd, *drv], cwd=REPO, env=env)

        new_s, new_samples = median_seconds(fresh, runs=runs, warmup=0)

        def cold() -> object:
            home = Path(tmp) / f"cold-{next(counter)}"
            return run_quiet(cmd, cwd=REPO, env={**os.environ, "ENVBUILD_HOME": str(home)})

        cold_s, cold_samples = median_seconds(cold, runs=runs, warmup=0)
    rows = [
        row("resolve wall, repeated request", warm * 1000, "ms", goal=GOAL_MS, runs=runs,
            command=shown, note=_samples(warm_samples)),
        row("resolve wall, new request (--driver varies), matrix cache warm", new_s * 1000,
            "ms", goal=GOAL_MS, runs=runs, command=shown + " --driver 525.60.1NN",
            note=_samples(new_samples)),
        row("resolve wall, cold (fresh ENVBUILD_HOME)", cold_s * 1000, "ms", goal=COLD_GOAL_MS,
            runs=runs, command=shown, note=_samples(cold_samples)),
    ]
    write_results("resolve", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
