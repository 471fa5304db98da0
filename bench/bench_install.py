"""Install speed: warm re-install vs ``cp -al`` of the same files, and the no-op ``env``.

Runs in one process on one machine so the figures compare:

* ``install``: a fresh prefix from a warm package cache (``envbuild install``
  in process, generation + activation + state included);
* ``envbuild install`` as a user types it: a new process per run (start-up, lockfile
  parse, plan, install), beside ``cp -al`` and ``uv pip install`` of the lockfile's
  wheels (warm uv cache, ``--no-deps --target`` a new dir) in the same run;
* ``cp -al``: hardlink-copy of the installed generation (the floor for any
  cache-to-prefix installer);
* ``noop``: a second ``envbuild install`` of an up-to-date prefix, as a new
  process (what a no-op ``make env`` costs in the install stage).

Medians of ``--repeat`` runs (default 7) go to ``bench/results/install.json``.
"""

from __future__ import annotations

import argparse
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

from bench.common import envbuild_cmd, median_seconds, row, run_quiet, write_results  # noqa: E402


def noop_env_rows(repeat: int) -> list[dict[str, object]]:
    """No-op ``make env``: the demo env (every stage) once, then timed re-runs.

    Measured twice: the whole ``make demo`` (make + the tool's start-up + every stage's
    up-to-date check) and the ``envbuild env`` command alone, which is what ``make env``
    runs.
    """
    run_quiet(["make", "-s", "demo"], cwd=REPO)  # first run builds everything
    demo = REPO / ".envbuild" / "demo"
    env_cmd = [*envbuild_cmd(), "env", "envspecs/demo.yaml", "--cuda", "cpu",
               "--lockfile", str(demo / "demo-cpu.conda-lock.yml"),
               "--channel", (demo / "channel").as_uri()]
    make_s, _ = median_seconds(lambda: run_quiet(["make", "-s", "demo"], cwd=REPO), repeat)
    env_s, _ = median_seconds(lambda: run_quiet(env_cmd, cwd=REPO), repeat)
    return [
        row("no-op make demo (make + every stage up to date)", make_s, "s", goal=1,
            runs=repeat, command="make demo  # twice; the second is timed"),
        row("no-op envbuild env (what make env runs)", env_s, "s", goal=1, runs=repeat,
            command="envbuild env envspecs/demo.yaml --cuda cpu ..."),
    ]


def _time(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def compare(lockfile: Path, label: str, work: Path, repeat: int) -> list[dict[str, object]]:
    """Warm install of ``lockfile`` into new prefixes vs ``cp -al`` of one generation."""
    from builder.install import InstallRequest, install

    install(InstallRequest(lockfile=lockfile, prefix=work / f"{label}-warm"))  # warm caches
    gen = (work / f"{label}-warm").resolve()
    inst, cp = [], []
    for i in range(repeat):
        inst.append(_time(lambda i=i: install(InstallRequest(lockfile=lockfile,
                                                             prefix=work / f"{label}-p{i}"))))
        cp.append(_time(lambda i=i: subprocess.run(
            ["cp", "-al", str(gen), str(work / f"{label}-c{i}")], check=True)))
    files = sum(len(f) for _, _, f in os.walk(gen))
    ins, cpal = statistics.median(inst), statistics.median(cp)
    cmd = ".venv/bin/python bench/bench_install.py"
    return [
        row(f"{label}: warm install into a new prefix", ins, "s", runs=repeat, command=cmd,
            note=f"{files} files"),
        row(f"{label}: cp -al of the same generation", cpal, "s", runs=repeat, command=cmd),
        row(f"{label}: warm install / cp -al", ins / cpal, "x", goal=2, runs=repeat,
            command=cmd, note="same run"),
    ]


def _uv_install(lockfile: Path, target: Path) -> list[str]:
    from builder.install.plan import load_plan
    from builder.lock.pypi_layer import uv_bin

    urls = [p.url for p in load_plan(lockfile, platform="linux-64").pip]
    return [uv_bin(), "pip", "install", "--no-deps", "--quiet", "--target", str(target),
            *urls]


def compare_cli(lockfile: Path, label: str, work: Path, repeat: int) -> list[dict[str, object]]:
    """The whole ``envbuild install`` command vs ``cp -al`` and ``uv pip install``."""
    base = [*envbuild_cmd(), "install", str(lockfile), "--prefix"]
    gen = (work / f"{label}-warm").resolve()
    uv_warm = _uv_install(lockfile, work / f"{label}-uvwarm")
    run_quiet(uv_warm, cwd=REPO)  # warm uv's cache
    inst, cp, uv = [], [], []
    for i in range(repeat):
        inst.append(_time(lambda i=i: run_quiet([*base, str(work / f"{label}-cli{i}")],
                                                cwd=REPO)))
        cp.append(_time(lambda i=i: subprocess.run(
            ["cp", "-al", str(gen), str(work / f"{label}-cc{i}")], check=True)))
        uv.append(_time(lambda i=i: run_quiet(
            _uv_install(lockfile, work / f"{label}-uv{i}"), cwd=REPO)))
    ins, cpal, uvs = statistics.median(inst), statistics.median(cp), statistics.median(uv)
    shown = f"envbuild install {lockfile.name} --prefix NEW"
    n_pip = len(uv_warm) - 7
    return [
        row(f"{label}: envbuild install into a new prefix (whole command)", ins, "s",
            runs=repeat, command=shown, note="new process, warm package cache"),
        row(f"{label}: whole command / cp -al (same run)", ins / cpal, "x", goal=2,
            runs=repeat, command=shown),
        row(f"{label}: uv pip install of the lockfile's {n_pip} wheel(s)", uvs, "s",
            runs=repeat, command="uv pip install --no-deps --target NEW WHEELS",
            note="warm uv cache; comparator for the pip layer"),
        row(f"{label}: whole command / uv pip install (same run)", ins / uvs, "x",
            runs=repeat, command=shown),
    ]


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envbuild-bench-"))
    from builder.demo.localchannel import ensure_local_channel, write_channel_lockfile

    rows = noop_env_rows(args.repeat)  # also leaves the demo's torch lockfile behind
    os.environ["ENVBUILD_HOME"] = str(work / "home")
    local = ensure_local_channel(work / "lc")
    small = write_channel_lockfile(local, work / "bench.conda-lock.yml")
    rows += compare(small, "small env (python, pip, 1 tool, 1 wheel)", work, args.repeat)
    demo_lock = REPO / ".envbuild" / "demo" / "demo-cpu.conda-lock.yml"
    demo = "demo env (python + torch 2.13.0 CPU, numpy)"
    rows += compare(demo_lock, demo, work, args.repeat)
    rows += compare_cli(demo_lock, demo, work, args.repeat)
    noop = [_time(lambda: subprocess.run(
        [sys.executable, "-m", "builder", "install", str(small), "--prefix",
         str(work / "small env (python, pip, 1 tool, 1 wheel)-warm")],
        check=True, capture_output=True, cwd=REPO)) for _ in range(args.repeat)]
    rows.append(row("no-op envbuild install (new process)", statistics.median(noop), "s",
                    runs=args.repeat, command=".venv/bin/python bench/bench_install.py",
                    note="start-up, lockfile parse, up-to-date check"))
    write_results("install", rows)
    shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
