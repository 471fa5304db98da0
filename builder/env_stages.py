"""The stages of ``envbuild env``, in order, as a typed registry of small functions.

Each stage takes the run's :class:`Context` and returns ``(action, detail)``.
Stages import their heavy modules lazily.  A stage whose implementation is not
available in this installation reports ``missing`` (shown in the summary and
failing the run) instead of passing silently.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from builder.errors import CheckFailed

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

    def __init__(self, req: EnvRequest, loaded: Any, gens: Any, cuda: str) -> None:
        self.req, self.loaded, self.gens, self.cuda = req, loaded, gens, cuda
        self.resolution: Any = None
        self.lockfile: Path | None = None
        self.lockmodel: Any = None

    @property
    def prefix(self) -> Path:
        """The final prefix path (a symlink to the current generation)."""
        return Path(self.gens.prefix)


def _optional(module: str, attr: str) -> Any | None:
    """``module.attr`` when this installation has it, else None."""
    try:
        return getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None


def stage_resolve(ctx: Context) -> tuple[Action, str]:
    """Spec + target -> Resolution (always run: cheap, and lock needs it)."""
    from builder.build.plan import resolve_for_host

    notes: list[str] = []
    # the arch list follows this machine's GPUs; the lock does not depend on it
    ctx.resolution = resolve_for_host(ctx.loaded, ctx.cuda, notes.append)
    res = ctx.resolution
    arch = ";".join(res.arch_list) or "none"
    return "done", (f"python {res.python}, torch {res.torch} ({res.cuda}, {res.provider}), "
                    f"arch {arch}" + "".join(f"; {n}" for n in notes))


def _lock_request(ctx: Context, output: Path) -> Any:
    from builder.lock import LockRequest

    return LockRequest(spec=ctx.loaded, resolution=ctx.resolution, output=output,
                       channels=ctx.req.channels, source_overrides=_overrides(ctx))


def _overrides(ctx: Context) -> dict[str, Path]:
    """``--source NAME=PATH`` as a mapping; a name the spec does not have is bad input."""
    from builder.errors import UsageError
    from builder.sources import parse_source_overrides

    overrides = parse_source_overrides(list(ctx.req.sources))
    unknown = sorted(set(overrides) - set(ctx.loaded.spec.sources))
    if unknown:
        raise UsageError(f"--source names unknown source(s): {', '.join(unknown)}",
                         hint="known: " + (", ".join(sorted(ctx.loaded.spec.sources)) or "none"))
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
    ops = tuple(getattr(ctx.resolution, "ops", ()) or ())
    if not ops:
        return
    from builder import paths
    from builder.sources import fetch_source

    pinned = {p.name: p for p in _pinned_sources(ctx)}
    for name in sorted({op.source for op in ops if op.source in pinned}):
        fetch_source(pinned[name], paths.sources_cache(), overrides=_overrides(ctx),
                     spec_dir=ctx.loaded.path.parent)


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
    """Compile the spec's ops into the prefix (cache hits come from the build store); the
    install plan (collisions, each op's dependencies) is checked before any install."""
    ops = tuple(getattr(ctx.resolution, "ops", ()) or ())
    if not ops:
        return "skipped", "the spec has no ops"
    prepare = _optional("builder.build.ops", "prepare_op")
    if prepare is None:
        return "missing", "builder.build.ops.prepare_op is not available"
    from builder import paths
    from builder.build.ops import OpBuildRequest, install_prepared
    from builder.build.plan import skip_fixups, source_pins
    from builder.build.records import OpOrigin
    from builder.sources import fetch_source

    pinned = {p.name: p for p in _pinned_sources(ctx)}
    res, prepared = ctx.resolution, []
    for op in ops:
        if op.source not in pinned:
            raise CheckFailed(f"lockfile {ctx.lockfile} pins no source {op.source!r}",
                              hint="run `make lock`")
        pin = pinned[op.source]
        root = fetch_source(pin, paths.sources_cache(), overrides=_overrides(ctx),
                            spec_dir=ctx.loaded.path.parent)
        location = pin.url if pin.kind == "git" else str(root.resolve())
        origin = OpOrigin(source=op.source, location=location, commit=pin.commit,
                          digest=pin.sha256)
        prepared.append(prepare(OpBuildRequest(
            name=op.name, source_dir=root / op.path, prefix=ctx.prefix,
            arch_list=res.arch_list, fixups=op.fixups,
            skip_fixups=skip_fixups(ctx.loaded.spec, op.name),
            cxx_std=res.toolchain.cxx_std if res.toolchain else None, origin=origin,
            sanity=op.sanity, requirements=source_pins(origin, pin.rev),
            spec=ctx.loaded.path)))
    results = install_prepared(prepared)
    return "done", ", ".join(f"{r.name} ({'cached' if r.cache_hit else 'built'})"
                             for r in results)


def _pinned_sources(ctx: Context) -> list[Any]:
    from builder.lock.lockfile import envbuild_metadata, read_lockfile

    assert ctx.lockfile is not None
    return list(envbuild_metadata(read_lockfile(ctx.lockfile)).sources)


def stage_sanity(ctx: Context) -> tuple[Action, str]:
    """Kernel and import checks against the prefix (``envbuild sanity``)."""
    for module, attr in SANITY_ENTRY_POINTS:
        fn = _optional(module, attr)
        if fn is not None:
            report = fn(ctx.prefix)
            failed = getattr(report, "failed", None)
            if failed:
                raise CheckFailed(f"sanity checks failed for {ctx.prefix}: {failed}",
                                  hint=f"see `envbuild sanity --prefix {ctx.prefix}`")
            return "done", str(getattr(report, "summary", "") or "passed")
    return "missing", "no sanity entry point (builder.sanity) is available"


SANITY_ENTRY_POINTS: tuple[tuple[str, str], ...] = (
    ("builder.sanity", "run_sanity"),
    ("builder.sanity", "sanity"),
)

STAGES: tuple[tuple[str, Callable[[Context], tuple[Action, str]]], ...] = (
    ("resolve", stage_resolve),
    ("lock", stage_lock),
    ("install", stage_install),
    ("build", stage_build),
    ("sanity", stage_sanity),
)
STAGE_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGES)
