"""Two envbuild processes on one prefix at the same moment: both succeed, one waits and
says so, nothing is corrupted (the env works, the state file matches the generation)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.install.generations import Generations
from builder.install.state import read_state
from tests.helpers.prefix import demo_env_works, generation_leftovers
from tests.helpers.reliability import Spawned, record, spawn_cli

pytestmark = pytest.mark.reliability

ROUNDS = 5
WAIT_LINE = "waiting for the lock on prefix"


def _both(args: list[str], logs: Path, timeout: float = 600) -> tuple[Spawned, Spawned]:
    a = spawn_cli(args, logs)
    b = spawn_cli(args, logs)
    for sp in (a, b):
        sp.proc.wait(timeout=timeout)
    return a, b


def _consistent(prefix: Path) -> str | None:
    gens = Generations(prefix)
    current = gens.current()
    state = read_state(prefix)
    if current is None or current not in gens.complete():
        return f"current generation {current} is not complete"
    if state is None or state.generation != current or state.prefix != str(prefix):
        return f"state {state} does not match generation {current}"
    if generation_leftovers(prefix):
        return f"leftovers {generation_leftovers(prefix)}"
    return None


def test_two_concurrent_installs_on_one_prefix(local: LocalChannel,
                                               tmp_path: Path) -> None:
    lockfile = write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")
    failures: list[str] = []
    waited = 0
    for rnd in range(ROUNDS):
        prefix = tmp_path / f"env{rnd}"
        # round 0..: a fresh prefix (one installs, the other waits and finds it up to
        # date); odd rounds then also race two --force installs on the existing prefix
        runs = [["install", str(lockfile), "--prefix", str(prefix)]]
        if rnd % 2:
            runs.append([*runs[0], "--force"])
        for args in runs:
            a, b = _both(args, tmp_path / "logs")
            for sp in (a, b):
                if sp.proc.returncode != 0:
                    failures.append(f"round {rnd} {args[-1]}: exit {sp.proc.returncode}: "
                                    f"{sp.stderr()[-300:]}")
            waiters = [sp for sp in (a, b) if WAIT_LINE in sp.stderr()]
            waited += len(waiters) == 1
            if len(waiters) != 1:
                failures.append(f"round {rnd} {args[-1]}: {len(waiters)} of 2 said they waited")
            why = _consistent(prefix) or (None if demo_env_works(prefix) else "env does not work")
            if why:
                failures.append(f"round {rnd} {args[-1]}: {why}")
    races = ROUNDS + ROUNDS // 2
    broken = sum(("state" in f or "leftovers" in f or "work" in f) for f in failures)
    record("two concurrent installs on one prefix", races=races,
           both_exit_0=f"{races - sum('exit' in f for f in failures)}/{races}",
           exactly_one_waited_and_said_so=f"{waited}/{races}",
           consistent=f"{races - broken}/{races}",
           failures=failures)
    assert not failures, "\n".join(failures)


@pytest.mark.e2e
@pytest.mark.network
@pytest.mark.slow
def test_two_concurrent_env_runs_on_one_prefix(
        demo_project: tuple[Path, LocalChannel], tmp_path: Path) -> None:
    """The real `envbuild env` (every stage) twice at once on one prefix and lockfile."""
    spec, channel = demo_project
    prefix = tmp_path / "envs" / "demo"
    lockfile = tmp_path / "demo-cpu.conda-lock.yml"
    args = ["env", str(spec), "--cuda", "cpu", "--prefix", str(prefix), "--lockfile",
            str(lockfile), "--channel", channel.channel_url]
    start = time.monotonic()
    a, b = _both(args, tmp_path / "logs", timeout=900)
    for sp in (a, b):
        assert sp.proc.returncode == 0, sp.stderr()[-2000:]
    waiters = [sp for sp in (a, b) if WAIT_LINE in sp.stderr()]
    assert len(waiters) == 1, [sp.stderr()[-500:] for sp in (a, b)]
    assert _consistent(prefix) is None, _consistent(prefix)
    assert Generations(prefix).complete() == [1]  # the waiter found it done: no second install
    assert demo_env_works(prefix)
    record("two concurrent `envbuild env` on one prefix", races=1, both_exit_0="1/1",
           one_waited_and_said_so="1/1", seconds=round(time.monotonic() - start, 1))
