"""``kill -9`` at random moments of ``envbuild install`` and ``envbuild build``.

Each trial kills the whole process group (envbuild and its uv / pip / nvcc children,
as a closed terminal, a container stop or the OOM killer would) after a delay drawn
from a seeded RNG over the measured duration of the same command, then checks that
the previous environment still works and that the next run succeeds.

Figures (trial counts, seeds, where the kills landed) are printed as ``RELIABILITY``
lines and appended to ``$ENVBUILD_RELIABILITY_LOG`` when set; see RELIABILITY.md.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.install.generations import Generations
from builder.install.state import read_state
from builder.opbuild.store import EVICTED, MARKER, Store
from tests.helpers.prefix import demo_env_works, generation_leftovers, layered_venv
from tests.helpers.reliability import (
    bad_cached_archives,
    damaged_package_files,
    kill_after,
    op_variant,
    record,
    run_to_end,
    spawn_cli,
    write_cheap_op,
    write_wheel,
)

pytestmark = pytest.mark.reliability

INSTALL_TRIALS = 24  # alternately with a warm and an emptied package cache
INSTALL_SEED = 20261127
BUILD_TRIALS = 20  # in BUILD_STREAMS parallel streams, each with its own prefix and store
BUILD_STREAMS = 2
BUILD_SEED = 5_2026
ARCH = "9.0"


# --------------------------------------------------------------------------- install


def _install_args(lockfile: Path, prefix: Path) -> list[str]:
    return ["install", str(lockfile), "--prefix", str(prefix), "--force"]


def _prefix_consistent(prefix: Path) -> str | None:
    """Why ``prefix`` is not a consistent envbuild prefix, or None."""
    gens = Generations(prefix)
    current = gens.current()
    if current is None:
        return "PREFIX is not a symlink to a generation"
    if current not in gens.complete():
        return f"current generation {current} is not complete"
    state = read_state(prefix)
    if state is None or state.generation != current or state.prefix != str(prefix):
        return f"state file disagrees with the current generation {current}: {state}"
    if not demo_env_works(prefix):
        return "the prefix's python does not run or does not import the pip layer"
    return None


def test_kill_9_during_install(local: LocalChannel, tmp_path: Path) -> None:
    """INSTALL_TRIALS kills of `install --force` into a prefix with a working generation."""
    lockfile = write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")
    prefix = tmp_path / "env"
    logs = tmp_path / "logs"
    cache = Path(os.environ["ENVBUILD_HOME"]) / "pkgs"
    archives = sorted(local.channel.glob("*/*.conda"))
    rc, _, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(prefix)], logs)
    assert rc == 0, err
    # measured durations: warm package cache, and cold (cache emptied first)
    warm, cold = [], []
    for _ in range(2):
        rc, _, err, secs = run_to_end(_install_args(lockfile, prefix), logs)
        assert rc == 0, err
        warm.append(secs)
        shutil.rmtree(cache)
        rc, _, err, secs = run_to_end(_install_args(lockfile, prefix), logs)
        assert rc == 0, err
        cold.append(secs)
    durations = {"warm": statistics.mean(warm), "cold": statistics.mean(cold)}
    rng = random.Random(INSTALL_SEED)
    failures: list[str] = []
    outcome = Counter[str]()
    for trial in range(INSTALL_TRIALS):
        mode = "cold" if trial % 2 else "warm"
        if mode == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        before = Generations(prefix).current()
        delay = rng.uniform(0, durations[mode])
        killed = kill_after(spawn_cli(_install_args(lockfile, prefix), logs), delay)
        outcome["killed" if killed else "finished before the kill"] += 1
        after = Generations(prefix).current()
        if after != before:
            outcome["kill landed after the switch"] += 1
        why = _prefix_consistent(prefix)
        if why:
            failures.append(f"trial {trial} ({mode}, kill at {delay:.3f}s): previous env: {why}")
        rc, _, err, _ = run_to_end(_install_args(lockfile, prefix), logs)
        why = _prefix_consistent(prefix) if rc == 0 else f"exit {rc}: {err[-400:]}"
        if why is None and generation_leftovers(prefix):
            why = f"leftovers after the next run: {generation_leftovers(prefix)}"
        if why is None and mode == "cold":  # a kill may have landed in fetch or extraction
            damaged = damaged_package_files(prefix, archives) + bad_cached_archives(cache)
            why = f"damaged: {damaged[:3]}" if damaged else None
        if why:
            failures.append(f"trial {trial} ({mode}, kill at {delay:.3f}s): next run: {why}")
    previous_ok = INSTALL_TRIALS - sum("previous env" in f for f in failures)
    next_ok = INSTALL_TRIALS - sum("next run" in f for f in failures)
    record("kill -9 during install", trials=INSTALL_TRIALS, seed=INSTALL_SEED,
           durations_s={k: round(v, 2) for k, v in durations.items()},
           previous_env_intact=f"{previous_ok}/{INSTALL_TRIALS}",
           next_run_ok=f"{next_ok}/{INSTALL_TRIALS}", outcomes=dict(outcome),
           failures=failures)
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- build


def _store_problems(store_root: Path) -> list[str]:
    """Entries that would be served although not whole (a marker without one good wheel)."""
    problems = []
    ops = store_root / "ops"
    for d in sorted(ops.iterdir()) if ops.is_dir() else ():
        wheels = list(d.glob("*.whl"))
        if (d / MARKER).is_file():
            if len(wheels) != 1 or not (d / "meta.json").is_file():
                problems.append(f"{d.name[:12]}: marked complete without one wheel + meta.json")
            elif not zipfile.is_zipfile(wheels[0]):
                problems.append(f"{d.name[:12]}: marked complete with a broken wheel")
        elif Store(store_root).lookup(d.name) is not None:
            problems.append(f"{d.name[:12]}: served without its completion marker")
    return problems


def _temp_dirs(store_root: Path) -> list[str]:
    tmp = store_root / "tmp"
    return sorted(d.name for d in tmp.iterdir()) if tmp.is_dir() else []


def _half_published(store_root: Path) -> set[str]:
    ops = store_root / "ops"
    return ({d.name for d in ops.iterdir()
             if not (d / MARKER).exists() and not d.name.startswith(EVICTED)}
            if ops.is_dir() else set())


def _build_stream(stream: int, prefix: Path, root: Path, trials: int, seed: int,
                  failures: list[str], outcome: Counter[str], durations: list[float]) -> None:
    try:
        _build_trials(stream, prefix, root, trials, seed, failures, outcome, durations)
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        failures.append(f"stream {stream}: setup failed: {type(exc).__name__}: {exc}")


def _build_trials(stream: int, prefix: Path, root: Path, trials: int, seed: int,
                  failures: list[str], outcome: Counter[str], durations: list[float]) -> None:
    """One stream of build kill trials with its own prefix, op source, store and home."""
    home = root / "home"
    env = {"ENVBUILD_HOME": str(home)}
    store_root = home / "store"
    logs = root / "logs"
    spec = root / "relop.yaml"
    args = ["build", str(spec), "--prefix", str(prefix), "--arch", ARCH]
    measured = []
    for variant in (0, 1):  # two full builds; kills are drawn over the shorter one
        write_cheap_op(root, variant)
        rc, _, err, secs = run_to_end(args, logs, env=env)
        assert rc == 0, err
        assert op_variant(prefix) == variant
        measured.append(secs)
    secs = min(measured)
    durations.append(secs)
    rng = random.Random(seed)
    for trial in range(trials):
        variant = 2 + trial
        write_cheap_op(root, variant)
        delay = rng.uniform(0, secs)
        tag = f"stream {stream} trial {trial} (kill at {delay:.2f}s of {secs:.2f}s)"
        killed = kill_after(spawn_cli(args, logs, env=env), delay)
        outcome["killed" if killed else "finished before the kill"] += 1
        seen = op_variant(prefix)
        if seen not in (variant - 1, variant):
            failures.append(f"{tag}: previous op: imports as {seen!r}, "
                            f"expected variant {variant - 1} (or the new {variant})")
        elif seen == variant:
            outcome["new op already installed"] += 1
        problems = _store_problems(store_root)
        if problems:
            failures.append(f"{tag}: store: {problems}")
        half = _half_published(store_root)
        outcome["half-published entries left"] += len(half)
        if _temp_dirs(store_root):
            outcome["killed builds that left a temp dir"] += 1
        rc, out, err, _ = run_to_end(args, logs, env=env)
        if rc != 0:
            failures.append(f"{tag}: next run: exit {rc}: {err[-400:]}")
            continue
        if half and "cache hit" in out and any(k[:16] in out for k in half):
            failures.append(f"{tag}: next run: a half-published entry was served as a hit")
        if op_variant(prefix) != variant:
            failures.append(f"{tag}: next run: op imports as {op_variant(prefix)!r}, "
                            f"expected {variant}")
        problems = _store_problems(store_root)
        if problems:
            failures.append(f"{tag}: next run: store: {problems}")
        leftovers = _temp_dirs(store_root)
        if leftovers:
            failures.append(f"{tag}: next run: store: temp dirs left behind: {leftovers}")
    outcome["store tmp dirs left"] += len(_temp_dirs(store_root))


def test_kill_9_during_build(compile_ready: None, tmp_path: Path) -> None:
    """BUILD_TRIALS kills of `envbuild build` of a cheap CUDA op from a path source."""
    failures: list[str] = []
    outcome = Counter[str]()
    durations: list[float] = []
    threads = []
    per_stream = BUILD_TRIALS // BUILD_STREAMS
    for stream in range(BUILD_STREAMS):
        root = tmp_path / f"stream{stream}"
        prefix = layered_venv(root / "prefix")
        threads.append(threading.Thread(target=_build_stream, args=(
            stream, prefix, root, per_stream, BUILD_SEED + stream, failures, outcome,
            durations)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(durations) == BUILD_STREAMS, "a stream failed before its trials (see above)"
    trials = per_stream * BUILD_STREAMS
    previous_ok = trials - sum("previous op" in f for f in failures)
    next_ok = trials - sum("next run" in f for f in failures)
    store_ok = trials - len({f.split(":")[0] for f in failures if "store" in f})
    record("kill -9 during build", trials=trials, seed=[BUILD_SEED + s for s in
                                                        range(BUILD_STREAMS)],
           streams=BUILD_STREAMS, durations_s=[round(d, 2) for d in durations],
           previous_op_imports=f"{previous_ok}/{trials}", next_run_ok=f"{next_ok}/{trials}",
           store_never_serves_partial=f"{store_ok}/{trials}", outcomes=dict(outcome),
           failures=failures)
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- lock

LOCK_TRIALS = 16  # half the kills drawn over the whole run, half over its last 40 %
LOCK_SEED = 12_2026


def _lock_variant(lockfiles: Path) -> tuple[str | None, str | None]:
    """(the spec name the lockfile records, the name environment.yml gives)."""
    import re

    lock = lockfiles / "mini.conda-lock.yml"
    env = lockfiles / "mini.environment.yml"
    in_lock = re.search(r"envbuild\.spec_name: (\S+)", lock.read_text()) if lock.exists() else None
    in_env = re.search(r"^name: (\S+?)-cu117$", env.read_text(), re.M) if env.exists() else None
    return (in_lock.group(1) if in_lock else None, in_env.group(1) if in_env else None)


def test_kill_9_during_lock(tmp_path: Path) -> None:
    """A killed ``lock`` leaves no temp file and never an environment.yml of a lockfile that
    was not written: both files are the previous run's, or both the new run's."""
    from tests.helpers import DATA, SNAPSHOT, snapshot_missing_reason

    reason = snapshot_missing_reason()
    if reason:
        pytest.skip(reason)
    spec = tmp_path / "envspecs" / "mini.yaml"
    spec.parent.mkdir()
    # the spec's pip packages from a local wheelhouse: uv really runs, and stays offline
    house = tmp_path / "wheels"
    for name in ("scipy", "shapely"):
        write_wheel(house, name, "1.0", {f"{name}/__init__.py": ""})
    body = ((DATA / "lock" / "m2f-mini.yaml").read_text()
            + f"pip_options: {{find_links: [{house}], no_index: true}}\n")
    lockfiles = tmp_path / "lockfiles"
    args = ["lock", str(spec), "--cuda", "11.7", "--channel-snapshot", str(SNAPSHOT),
            "--allow-incomplete", "-o", str(lockfiles / "mini.conda-lock.yml")]
    logs = tmp_path / "logs"

    def write_spec(variant: int) -> None:
        spec.write_text(body.replace("name: m2f-mini", f"name: mini-v{variant}"))

    write_spec(0)
    rc, _, err, secs = run_to_end(args, logs)
    assert rc == 0, err
    assert _lock_variant(lockfiles) == ("mini-v0", "mini-v0")
    rng = random.Random(LOCK_SEED)
    failures, outcome = [], Counter[str]()
    current = 0
    for trial in range(LOCK_TRIALS):
        write_spec(trial + 1)
        delay = rng.uniform(0, secs) if trial % 2 else rng.uniform(0.6 * secs, secs)
        killed = kill_after(spawn_cli(args, logs), delay)
        outcome["killed" if killed else "finished before the kill"] += 1
        seen = _lock_variant(lockfiles)
        temps = sorted(p.name for p in lockfiles.iterdir() if p.name.endswith(".tmp"))
        if temps:
            failures.append(f"trial {trial} (kill at {delay:.2f}s): temp files left: {temps}")
        if seen[0] != seen[1] or seen[0] not in (f"mini-v{current}", f"mini-v{trial + 1}"):
            failures.append(f"trial {trial} (kill at {delay:.2f}s): lockfile says {seen[0]}, "
                            f"environment.yml says {seen[1]}")
        if seen[0] == f"mini-v{trial + 1}":
            outcome["new lock already written"] += 1
        current = int(str(seen[0]).rsplit("v", 1)[-1]) if seen[0] else current
    rc, _, err, _ = run_to_end(args, logs)
    assert rc == 0, err
    assert _lock_variant(lockfiles) == (f"mini-v{LOCK_TRIALS}",) * 2
    assert not failures, "\n".join(failures)
    record("kill -9 during lock", trials=LOCK_TRIALS, seed=LOCK_SEED,
           lock_seconds=round(secs, 2), consistent_pair=f"{LOCK_TRIALS}/{LOCK_TRIALS}",
           temp_files_left=0, **dict(outcome))
