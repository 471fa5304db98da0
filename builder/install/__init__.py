"""Lockfile -> prefix: hash-verified, atomic, idempotent (``envbuild install``).

Steps of one install, each timed: *fetch* (verified archives into the shared
package cache), *conda* (rattler links them into a new generation, patched for
the final prefix), *pip* (uv installs the exact wheels, hashes required, no
deps), *activation* (scripts from templates), *state* (``.envbuild/state.json``,
written last), then *switch* (one ``os.replace`` of the prefix symlink) and
*prune*.  See :mod:`builder.install.generations` for why this is crash safe.

A prefix whose state has the same install key is left alone ("up to date").
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from builder.errors import CheckFailed, EnvbuildError
from builder.install import faults
from builder.install.generations import Generations
from builder.install.plan import InstallPlan, load_plan
from builder.install.scripts import bin_scripts, check_scripts, point_at_prefix
from builder.install.state import InstallState, read_state, write_state
from builder.util.fs import remove_tree

T = TypeVar("T")


class InstallRequest(BaseModel):
    """What to install where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lockfile: Path
    prefix: Path
    name: str | None = None
    progress: bool = False
    force: bool = False
    channels: tuple[str, ...] = ()  # NAME=URL mirrors (see builder.install.mirrors)
    offline: bool = False  # only the package cache; say what is missing
    conda_backend: str = "rattler"
    pip_backend: str = "uv"


class InstallResult(BaseModel):
    """What ``install`` did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: Path
    action: Literal["installed", "up to date"]
    generation: int
    previous_generation: int | None
    install_key: str
    conda_packages: int
    pip_packages: int
    steps: tuple[tuple[str, float], ...] = ()


def install(req: InstallRequest) -> InstallResult:
    """Install ``req.lockfile`` into ``req.prefix``, holding the prefix lock."""
    plan = load_plan(req.lockfile)
    gens = Generations(req.prefix)
    gens.check_prefix()
    with gens.locked():
        return install_locked(req, plan, gens)


def install_locked(req: InstallRequest, plan: InstallPlan, gens: Generations) -> InstallResult:
    """Install with the prefix lock already held (``envbuild env`` holds it for all stages)."""
    gens.recover()
    current = gens.current()
    state = read_state(gens.prefix) if current is not None else None
    if (state is not None and state.install_key == plan.install_key and not req.force
            and state.prefix == str(gens.prefix)):
        return _result(gens, state, "up to date", ())
    n, partial = gens.new_partial()
    try:
        steps = _build_generation(req, plan, gens, n, partial, current)
        gens.publish(n, partial)
        faults.point("switch")
        gens.switch(n)
    except OSError as exc:
        remove_tree(partial, inside=gens.root, ignore_errors=True)
        raise EnvbuildError(
            f"install into {gens.prefix} failed: {exc}",
            hint=_unchanged_hint(current) + (
                "; free some disk space and run again" if exc.errno == 28 else "")) from None
    except BaseException:
        remove_tree(partial, inside=gens.root, ignore_errors=True)
        raise
    gens.prune(keep={n} | ({current} if current is not None else set()))
    new_state = read_state(gens.prefix)
    assert new_state is not None
    return _result(gens, new_state, "installed", steps)


def _unchanged_hint(current: int | None) -> str:
    if current is None:
        return "no environment was created"
    return f"the previous environment (generation {current}) is unchanged and still current"


def _build_generation(req: InstallRequest, plan: InstallPlan, gens: Generations, n: int,
                      partial: Path, previous: int | None) -> tuple[tuple[str, float], ...]:
    from builder import paths
    from builder.install.activation import write_activation
    from builder.install.backends import CONDA_LINKERS, PIP_INSTALLERS
    from builder.install.fetch import fetch_all
    from builder.install.mirrors import parse_mirrors

    cache = paths.pkgs_cache()
    mirrors = parse_mirrors(req.channels, os.environ)
    timed: list[tuple[str, float]] = []

    def step(name: str, fn: Callable[[], object]) -> None:
        from builder.util import progress

        t0 = time.monotonic()
        with progress.stage("install", name):
            faults.point(name)
            fn()
        timed.append((name, time.monotonic() - t0))

    archives: list[Path] = []
    step("fetch", lambda: archives.extend(fetch_all(plan.conda, cache, progress=req.progress,
                                                    mirrors=mirrors, offline=req.offline)))
    linker = _backend(CONDA_LINKERS, req.conda_backend, "conda backend")()
    step("conda", lambda: linker.link(plan.conda, archives, partial, gens.prefix, cache))
    if plan.pip:
        python = _python_of(partial)
        work = partial / ".envbuild"
        work.mkdir(parents=True, exist_ok=True)
        pip = _backend(PIP_INSTALLERS, req.pip_backend, "pip backend")()
        before = bin_scripts(partial)
        step("pip", lambda: pip.install(plan.pip, python, work, cache / "uv",
                                        offline=req.offline))
        after = bin_scripts(partial)
        pip_scripts = (after - before) | point_at_prefix(partial, gens.prefix, after)
        step("scripts", lambda: check_scripts(partial, gens.prefix, pip_scripts))
    name = req.name or gens.prefix.name
    step("activation", lambda: write_activation(partial, gens.prefix, name))
    step("state", lambda: write_state(partial, InstallState(
        install_key=plan.install_key, lockfile=str(Path(plan.lockfile).resolve()),
        lock_input_hash=plan.input_hash, generation=n, previous_generation=previous,
        prefix=str(gens.prefix), created=_dt.datetime.now(_dt.timezone.utc).isoformat(),
        conda_packages=len(plan.conda), pip_packages=len(plan.pip))))
    return tuple(timed)


def _backend(registry: Mapping[str, Callable[[], T]], name: str, what: str) -> Callable[[], T]:
    try:
        return registry[name]
    except KeyError:
        raise EnvbuildError(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))}",
                            hint="use one of the listed names") from None


def _python_of(gen_dir: Path) -> Path:
    for rel in ("bin/python3", "bin/python"):
        if (gen_dir / rel).exists():
            return gen_dir / rel
    raise CheckFailed("the lockfile has pip packages but its conda packages include no python",
                      hint="add python to the spec's conda packages and run `make lock`")


def _result(gens: Generations, state: InstallState, action: Literal["installed", "up to date"],
            steps: tuple[tuple[str, float], ...]) -> InstallResult:
    return InstallResult(
        prefix=gens.prefix, action=action, generation=state.generation,
        previous_generation=state.previous_generation, install_key=state.install_key,
        conda_packages=state.conda_packages, pip_packages=state.pip_packages, steps=steps)


class RollbackResult(BaseModel):
    """Which generation became current."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: Path
    from_generation: int
    to_generation: int


def rollback(prefix: Path) -> RollbackResult:
    """Make the previous generation of ``prefix`` current again (atomic)."""
    gens = Generations(prefix)
    if not gens.exists():  # nothing to roll back; and nothing is created to say so
        raise EnvbuildError(f"{gens.prefix} is not an envbuild prefix (nothing to roll back)",
                            hint="create it with `envbuild install` or `envbuild env`")
    with gens.locked():
        gens.recover()
        current = gens.current()
        if current is None:
            raise EnvbuildError(f"{gens.prefix} is not an envbuild prefix (nothing to roll back)",
                                hint="create it with `envbuild install` or `envbuild env`")
        state = read_state(gens.prefix)
        candidates = [n for n in gens.complete() if n != current]
        target = state.previous_generation if state else None
        if target not in candidates:
            older = [n for n in candidates if n < current]
            target = older[-1] if older else None
        if target is None:
            raise CheckFailed(f"{gens.prefix} has no previous generation to roll back to",
                              hint="generations are kept from the second install on")
        gens.switch(target)
        return RollbackResult(prefix=gens.prefix, from_generation=current, to_generation=target)
