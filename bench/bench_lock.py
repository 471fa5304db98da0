"""Lock benchmarks: mask2former CUDA 11.7 against ../shared/channels-snapshot.

* conda solve alone (nvcc choice + companions + rattler solve), cold repodata load
  per run: goal <= 100 ms;
* the whole ``envbuild lock`` command (PyPI layer over the network, sources pinned
  from local clones): goal <= 3 s;
* the PyPI layer alone (uv pip compile + wheel selection), for the breakdown.

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
    from builder.resolve import ResolveRequest, resolve
    from builder.spec import load_spec

    loaded = load_spec(spec)
    req = LockRequest(spec=loaded, resolution=resolve(loaded, ResolveRequest(cuda="11.7")),
                      output=tmp / "x.conda-lock.yml", channel_snapshot=SNAPSHOT)
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


def _pypi_row(spec: Path) -> dict[str, object]:
    from builder.lock import LockRequest
    from builder.lock.api import _solve_pypi
    from builder.lock.pipeline import prepare, solve_conda
    from builder.resolve import ResolveRequest, resolve
    from builder.spec import load_spec

    loaded = load_spec(spec)
    req = LockRequest(spec=loaded, resolution=resolve(loaded, ResolveRequest(cuda="11.7")),
                      output=Path("unused"), channel_snapshot=SNAPSHOT)
    records = solve_conda(req, prepare(req)).records
    secs, _ = median_seconds(lambda: _solve_pypi(req, records), runs=RUNS)
    return row("PyPI layer (uv pip compile, network)", secs, "s", runs=RUNS,
               command="builder.lock.api._solve_pypi, 31 requirements",
               note="network-bound: uv revalidates every index page against pypi.org")


def main() -> int:
    sources, how = _sources()
    with tempfile.TemporaryDirectory(prefix="bench-lock-") as tmp_s:
        tmp = Path(tmp_s)
        spec = _spec_for(tmp, bool(sources))
        rows = _conda_solve_rows(spec, tmp)
        out = tmp / "mask2former-cu117.conda-lock.yml"
        argv = [*envbuild_cmd(), "lock", str(spec), "--cuda", "11.7", "--channel-snapshot",
                str(SNAPSHOT), "-o", str(out), *sources]
        secs, _ = median_seconds(lambda: run_quiet(argv, cwd=REPO), runs=RUNS)
        shown = "envbuild lock envspecs/mask2former.yaml --cuda 11.7 --channel-snapshot " \
                "../shared/channels-snapshot" + (" --source NAME=CLONE x4" if sources else "")
        rows.append(row("envbuild lock mask2former cu117 (whole command)", secs, "s", goal=3,
                        runs=RUNS, command=shown, note=f"PyPI included; {how}"))
        rows.append(_pypi_row(spec))
    write_results("lock", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
