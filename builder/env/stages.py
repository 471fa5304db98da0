"""The stages of ``envbuild env``, in order, as a typed registry of small functions.

Each stage takes the run's :class:`Context` and returns ``(action, detail)``.
Stages import their heavy modules lazily (the no-op path of ``env`` imports none of them).
``missing`` is kept in :data:`Action` for the summary's vocabulary: a stage reports it when
what it needs was not produced by an earlier stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from builder.errors import CheckFailed

if TYPE_CHECKING:
    from builder.install.generations import Generations
    from builder.lock import LockRequest
    from builder.resolve.resolution import Resolution
    from builder.spec.envspec import LoadedSpec

Action = Literal["done", "skipped", "up to date", "missing"]


class EnvRequest(BaseModel):
    """One ``envbuild env`` invocation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: Path
    cuda: str | None = None
    prefix: Path | None = None
    lockfile: Path | None = None  # default: lockfiles/<name>-<cuXY|cpu>.conda-lock.yml
    channels: tuple[str, ...] = ()
    progress: bool = False
    offline: bool = False  # install from the package cache only
    sources: tuple[str, ...] = ()  # NAME=PATH: local copies of pinned sources


class Context:
    """State threaded through the stages of one run."""

    def __init__(self, req: EnvRequest, loaded: LoadedSpec, gens: Generations,
                 cuda: str) -> None:
        self.req, self.loaded, self.gens, self.cuda = req, loaded, gens, cuda
        self._resolution: Resolution | None = None
        self.lockfile: Path | None = None

    @property
    def prefix(self) -> Path:
        """The final prefix path (a symlink to the current generation)."""
        return Path(self.gens.prefix)

    @property
    def resolution(self) -> Resolution:
        """The resolve stage's result (every later stage runs after it)."""
        assert self._resolution is not None, "the resolve stage has not run"
        return self._resolution

    @resolution.setter
    def resolution(self, value: Resolution) -> None:
        self._resolution = value


def stage_resolve(ctx: Context) -> tuple[Action, str]:
    """Spec + target -> Resolution (always run: cheap, and lock needs it)."""
    from builder.opbuild.plan import resolve_for_host

    notes: list[str] = []
    # the arch list follows this machine's GPUs; the lock does not depend on it
    ctx.resolution = resolve_for_host(ctx.loaded, ctx.cuda, notes.append)
    res = ctx.resolution
    arch = ";".join(res.arch_list) or "none"
    return "done", (f"python {res.python}, torch {res.torch} ({res.cuda}, {res.provider}), "
                    f"arch {arch}" + "".join(f"; {n}" for n in notes))


def _lock_request(ctx: Context, output: Path) -> LockRequest:
    from builder.lock import LockRequest

    return LockRequest(spec=ctx.loaded, resolution=ctx.resolution, output=output,
                       channels=ctx.req.channels, source_overrides=_overrides(ctx))


def _overrides(ctx: Context) -> dict[str, Path]:
    """``--source NAME=PATH`` as a mapping; a name the spec does not have is bad input."""
    from builder.opbuild.plan import check_overrides
    from builder.sources.fetch import parse_source_overrides

    overrides = parse_source_overrides(list(ctx.req.sources))
    check_overrides(ctx.loaded, overrides)
    return overrides


def stage_lock(ctx: Context) -> tuple[Action, str]:
    """Lock only when the lockfile is missing; a stale committed one is an error."""
    from builder.lock import check, default_lockfile_path, lock

    path = ctx.req.lockfile or Path(default_lockfile_path(ctx.loaded, ctx.resolution))
    ctx.lockfile = path
    if not path.exists():
        result = lock(_lock_request(ctx, path))
        ctx.lockfile = Path(result.path)
        _prefetch_sources(ctx)
        return "done", f"wrote {ctx.lockfile}"
    # where the committed lockfile was solved (live, mirror, snapshot) is not staleness;
    # bare --channel URLs (a replaced channel list, as in `make demo`) are
    from builder.install.mirrors import named_only

    bare = set(ctx.req.channels) - set(named_only(ctx.req.channels))
    diffs = check(replace(_lock_request(ctx, path), check_channels=bool(bare)))
    if diffs:
        raise CheckFailed(f"{path} is stale for {ctx.loaded.path}:\n"
                          + "\n".join(f"  - {d}" for d in diffs),
                          hint=f"re-lock with `{relock_command(ctx, path)}` (and commit the "
                               "new lockfile if it is committed)")
    _prefetch_sources(ctx)
    return "up to date", str(path)


def _prefetch_sources(ctx: Context) -> None:
    """Fetch the ops' pinned sources now, before the install: an unreachable git URL then
    fails in seconds instead of after minutes of downloads (build finds them cached)."""
    ops = ctx.resolution.ops
    if not ops or ctx.lockfile is None:
        return
    from builder.opbuild.plan import locate_sources

    locate = locate_sources(ctx.loaded, _overrides(ctx), lockfile=ctx.lockfile)
    for name in sorted({op.source for op in ops}):
        locate(name)


def relock_command(ctx: Context, path: Path) -> str:
    """The ``envbuild lock`` command that re-locks exactly this spec into ``path``."""
    import shlex

    from builder.util.redact import redact

    args = ["envbuild", "lock", str(ctx.req.spec), "--cuda", ctx.cuda, "-o", str(path)]
    for channel in ctx.req.channels:
        args += ["--channel", redact(channel)]
    return shlex.join(args)


def stage_install(ctx: Context) -> tuple[Action, str]:
    """Lockfile -> a new generation of the prefix (skipped when the install key matches)."""
    from builder.install import InstallRequest, install_locked
    from builder.install.plan import load_plan

    assert ctx.lockfile is not None
    plan = load_plan(ctx.lockfile)
    from builder.install.mirrors import named_only

    result = install_locked(InstallRequest(lockfile=ctx.lockfile, prefix=ctx.prefix,
                                           name=ctx.loaded.spec.name,
                                           channels=named_only(ctx.req.channels),
                                           offline=ctx.req.offline,
                                           progress=ctx.req.progress), plan, ctx.gens)
    if result.action == "up to date":
        return "up to date", f"generation {result.generation}"
    return "done", (f"generation {result.generation}: {result.conda_packages} conda, "
                    f"{result.pip_packages} pip packages")


def stage_build(ctx: Context) -> tuple[Action, str]:
    """Compile the spec's ops into the prefix from the lockfile's pins (cache hits come from
    the build store); the install plan (collisions, dependencies) is checked before any
    install.  The same orchestration as ``envbuild build``."""
    ops = ctx.resolution.ops
    if not ops:
        return "skipped", "the spec has no ops"
    if ctx.lockfile is None:
        return "missing", "no lockfile to take the sources' pins from"
    from builder.opbuild.plan import build_ops, locate_sources

    locate = locate_sources(ctx.loaded, _overrides(ctx), lockfile=ctx.lockfile)
    built = build_ops(ops, ctx.resolution, loaded=ctx.loaded, prefix=ctx.prefix, locate=locate)
    return "done", ", ".join(f"{r.name} ({'cached' if r.cache_hit else 'built'})"
                             for r in built.results)


def stage_sanity(ctx: Context) -> tuple[Action, str]:
    """Kernel and import checks against the prefix (``envbuild sanity``)."""
    from builder.sanity import run_sanity

    report = run_sanity(ctx.prefix)
    if report.failed:
        raise CheckFailed(f"sanity checks failed for {ctx.prefix}: {report.summary}",
                          hint=f"see `envbuild sanity --prefix {ctx.prefix}`")
    return "done", report.summary or "passed"


STAGES: tuple[tuple[str, Callable[[Context], tuple[Action, str]]], ...] = (
    ("resolve", stage_resolve),
    ("lock", stage_lock),
    ("install", stage_install),
    ("build", stage_build),
    ("sanity", stage_sanity),
)
STAGE_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGES)
