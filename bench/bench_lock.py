"""Lock benchmarks: mask2former CUDA 11.7 against ../shared/channels-snapshot.

* conda solve alone (nvcc choice + companions + rattler solve), cold repodata load
  per run: goal <= 100 ms;
* the whole ``envbuild lock`` command as a user types it (a new process; sources pinned
  from local clones), re-locking with unchanged inputs: goal <= 1 s;
* the same with ``--refresh`` (PyPI really asked): goal <= 3 s;
* the comparator in the same run: ``uv pip compile`` alone on the same requirements
  and constraints (online, as a full lock runs it), and the ratios.

Sources: ``--source`` clones are taken from ``$ENVBUILD_BENCH_MIRROR`` (default
``/work/.mirror``, ``<owner>+<repo>/repo`` bare git dirs); without them the spec's
``sources``/``ops`` are dropped from a temporary copy and the row says so.
Writes ``bench/results/lock.json``.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, envbuild_cmd, median_seconds, row, run_quiet, write_results

SPEC = REPO / "envspecs" / "mask2former.yaml"
SNAPSHOT = REPO.parent / "shared" / "channels-snapshot"
MIRRORS = {"detectron2": "facebookresearch+detectron2", "mask2former":
           "facebookresearch+Mask2Former", "panopticapi": "cocodataset+panopticapi",
           "cityscapesscripts": "mcordts+cityscapesScripts"}
RUNS = 5
# the snapshot lacks the CUDA 11.7 dev headers; the committed lockfile fills them from PyPI
FILL = ("pypi",)


def _sources() -> tuple[list[str], str]:
    root = Path(os.environ.get("ENVBUILD_BENCH_MIRROR", "/work/.mirror"))
    paths = {n: root / d / "repo" for n, d in MIRRORS.items()}
    if all(p.is_dir() for p in paths.values()):
        return [f"--source={n}={p}" for n, p in paths.items()], "sources from local clones"
    return [], "spec copy without sources/ops (no local clones found)"


def _spec_for(tmp: Path, with_sources: bool) -> Path:
    if with_sources:
        return SPEC
    text = SPEC.read_text()
    text = re.split(r"^sources:", text, flags=re.M)[0]
    out = tmp / "envspecs" / SPEC.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def _conda_solve_rows(spec: Path, tmp: Path) -> list[dict[str, object]]:
    from builder.lock import LockRequest
    from builder.lock.pipeline import prepare, solve_conda
    from builder.lock.solve_rattler import clear_cache
    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.spec.envspec import load_spec

    loaded = load_spec(spec)
    req = LockRequest(spec=loaded, resolution=resolve(loaded, ResolveRequest(cuda="11.7")),
                      output=tmp / "x.conda-lock.yml", channel_snapshot=SNAPSHOT,
                      fill_gaps=FILL)
    prep = prepare(req)

    def cold() -> None:
        clear_cache()
        solve_conda(req, prep)

    cold_s, _ = median_seconds(cold, runs=RUNS)
    warm_s, _ = median_seconds(lambda: solve_conda(req, prep), runs=RUNS)
    n = len(solve_conda(req, prep).records)
    return [
        row("conda solve (cold repodata load)", cold_s * 1000, "ms", goal=100, runs=RUNS,
            command="builder.lock.pipeline.solve_conda, mask2former cu117, snapshot",
            note=f"{n} records; nvcc fallback + companion lookups included"),
        row("conda solve (repodata loaded)", warm_s * 1000, "ms", runs=RUNS,
            command="same, SparseRepoData kept between runs"),
    ]


def _uv_alone(spec: Path, tmp: Path) -> tuple[float, int]:
    """``uv pip compile`` of the lock's own inputs, online, timed as a subprocess."""
    from builder.lock import LockRequest
    from builder.lock.api import _pypi_request
    from builder.lock.pipeline import prepare, solve_conda
    from builder.lock.pypi_layer import _argv, _env, _write_inputs
    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.spec.envspec import load_spec

    loaded = load_spec(spec)
    req = LockRequest(spec=loaded, resolution=resolve(loaded, ResolveRequest(cuda="11.7")),
                      output=tmp / "unused.yml", channel_snapshot=SNAPSHOT, fill_gaps=FILL)
    conda = solve_conda(req, prepare(req))
    preq = _pypi_request(req, conda.records, [], conda.pip_extra)
    work = tmp / "uv-alone"
    work.mkdir()
    _write_inputs(preq, work)
    argv = _argv(preq, offline=False)
    secs, _ = median_seconds(lambda: run_quiet(argv, cwd=work, env=_env()), runs=RUNS)
    return secs, len(preq.requirements)


def main() -> int:
    sources, how = _sources()
    with tempfile.TemporaryDirectory(prefix="bench-lock-") as tmp_s:
        tmp = Path(tmp_s)
        spec = _spec_for(tmp, bool(sources))
        rows = _conda_solve_rows(spec, tmp)
        out = tmp / "lockfiles" / "mask2former-cu117.conda-lock.yml"
        argv = [*envbuild_cmd(), "lock", str(spec), "--cuda", "11.7", "--channel-snapshot",
                str(SNAPSHOT), "--fill-gaps", "pypi", "-o", str(out), *sources]
        same, _ = median_seconds(lambda: run_quiet(argv, cwd=REPO), runs=RUNS)
        fresh, _ = median_seconds(lambda: run_quiet([*argv, "--refresh"], cwd=REPO),
                                  runs=RUNS)
        uv_s, n_req = _uv_alone(spec, tmp)
        shown = "envbuild lock envspecs/mask2former.yaml --cuda 11.7 --channel-snapshot " \
                "../shared/channels-snapshot --fill-gaps pypi" + (" --source NAME=CLONE x4"
                                                                  if sources else "")
        rows += [
            row("envbuild lock mask2former cu117, unchanged inputs (whole command)", same, "s",
                goal=1, runs=RUNS, command=shown, note=f"re-lock: PyPI not asked; {how}"),
            row("envbuild lock --refresh (whole command, PyPI asked)", fresh, "s", goal=3,
                runs=RUNS, command=shown + " --refresh", note="uv online, previous pins "
                "preferred"),
            row("uv pip compile alone, same inputs (online)", uv_s, "s", runs=RUNS,
                command="uv pip compile requirements.in -c constraints.txt ... (what a full "
                "lock runs)", note=f"{n_req} requirements; comparator, same run"),
            row("unchanged re-lock / uv pip compile alone", same / uv_s, "x", runs=RUNS,
                command=shown, note="same run"),
            row("--refresh lock / uv pip compile alone", fresh / uv_s, "x", runs=RUNS,
                command=shown + " --refresh", note="same run"),
        ]
    write_results("lock", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
