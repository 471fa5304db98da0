"""Install speed: warm re-install vs ``cp -al`` of the same files, and the no-op ``env``.

Runs in one process on one machine so the figures compare:

* ``install``: a fresh prefix from a warm package cache (``envbuild install``
  in process, generation + activation + state included);
* ``cp -al``: hardlink-copy of the installed generation (the floor for any
  cache-to-prefix installer);
* ``noop``: a second ``envbuild install`` of an up-to-date prefix, as a new
  process (what a no-op ``make env`` costs in the install stage).

Medians of ``--repeat`` runs (default 7) go to ``bench/results/install.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _time(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envbuild-bench-"))
    os.environ["ENVBUILD_HOME"] = str(work / "home")
    from builder.install import InstallRequest, install
    from builder.localchannel import ensure_local_channel, write_channel_lockfile

    local = ensure_local_channel(work / "lc")
    lockfile = write_channel_lockfile(local, work / "bench.conda-lock.yml")
    install(InstallRequest(lockfile=lockfile, prefix=work / "warm"))  # warms the cache
    gen = (work / "warm").resolve()
    inst, cp, noop = [], [], []
    for i in range(args.repeat):
        inst.append(_time(lambda i=i: install(InstallRequest(lockfile=lockfile,
                                                             prefix=work / f"p{i}"))))
        cp.append(_time(lambda i=i: subprocess.run(["cp", "-al", str(gen), str(work / f"c{i}")],
                                                   check=True)))
        noop.append(_time(lambda: subprocess.run(
            [sys.executable, "-m", "builder", "install", str(lockfile), "--prefix",
             str(work / "warm")], check=True, capture_output=True, cwd=REPO)))
    files = sum(len(f) for _, _, f in os.walk(gen))
    result = {
        "machine": os.uname().machine, "cpus": os.cpu_count(), "files": files,
        "packages": "local channel: python (host interpreter), pip, envbuild-demo-tool + 1 wheel",
        "repeat": args.repeat,
        "install_warm_s": statistics.median(inst), "cp_al_s": statistics.median(cp),
        "ratio": statistics.median(inst) / statistics.median(cp),
        "noop_install_process_s": statistics.median(noop),
    }
    out = REPO / "bench" / "results" / "install.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
