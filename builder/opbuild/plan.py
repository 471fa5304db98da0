"""From a resolution to op builds: locate each op's source, prepare every op, install them.

The one orchestration behind ``envbuild build`` and the ``build`` stage of ``envbuild env``.
What differs between them is only where an op's code comes from, and that is decided once,
by :func:`locate_sources`:

* with a lockfile (``env`` always has one; ``build`` uses the spec's default lockfile when
  it exists, or ``--lockfile``), every source comes from the lockfile's pins: the locked
  commit and content digest, fetched and verified (``--source NAME=PATH`` only says where
  to read that commit from).  The lockfile is the truth, so ``build`` and ``env`` compile
  the same code.
* without one, ``path:`` sources are used in place, ``--source`` directories as they are,
  and ``git:`` sources are pinned from the spec's rev and fetched.

The arch list, fixups and C++ standard come from the resolution (``--arch`` overrides the
arch list).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from builder.errors import CheckFailed, UsageError
from builder.opbuild.deps import OpRequirement
from builder.opbuild.ops import OpBuildRequest, OpBuildResult, install_prepared, prepare_op
from builder.opbuild.records import OpOrigin

if TYPE_CHECKING:
    from builder.opbuild.ops import PreparedOp
    from builder.resolve.resolution import OpPlan, Resolution
    from builder.sources.pinned import PinnedSource
    from builder.spec.envspec import EnvSpec, LoadedSpec

Log = Callable[[str], None]


@dataclass(frozen=True)
class OpSource:
    """Where one source's code is for this build, and where it came from."""

    root: Path  # the directory op paths are relative to (a git source's subdir applied)
    origin: OpOrigin
    rev: str | None  # the rev as written (a git source), for the matrix's pins


Locate = Callable[[str], OpSource]


def resolve_for_host(loaded: LoadedSpec, cuda: str | None,
                     warn: Log | None = None) -> Resolution:
    """Resolve for the GPUs of this machine, so ops are built for them and nothing else.

    Without a GPU (a build server, CI) the torch build's own arch list is used.  A GPU the
    matrix does not know falls back to that list with a warning; a GPU this CUDA cannot
    target at all is a conflict, reported before any compile.
    """
    from builder.host import detect_driver
    from builder.resolve.resolver import ResolveRequest, resolve

    names = tuple(dict.fromkeys(g.name for g in detect_driver().gpus))
    if not names:
        return resolve(loaded, ResolveRequest(cuda=cuda))
    try:
        return resolve(loaded, ResolveRequest(cuda=cuda, gpus=names))
    except UsageError as exc:
        if warn:
            warn(f"{exc.message}; building for the torch build's own arch list instead")
        return resolve(loaded, ResolveRequest(cuda=cuda))


def check_overrides(loaded: LoadedSpec, overrides: Mapping[str, Path]) -> None:
    """``--source NAME=PATH`` naming a source the spec does not have is bad input."""
    unknown = sorted(set(overrides) - set(loaded.spec.sources))
    if unknown:
        raise UsageError(f"--source names unknown source(s): {', '.join(unknown)}",
                         hint="known: " + (", ".join(sorted(loaded.spec.sources)) or "none"))


def locked_pins(lockfile: Path) -> dict[str, PinnedSource]:
    """The sources a lockfile pins, by name."""
    from builder.lock.lockfile import envbuild_metadata, read_lockfile

    return {p.name: p for p in envbuild_metadata(read_lockfile(lockfile), lockfile).sources}


def locate_sources(loaded: LoadedSpec, overrides: Mapping[str, Path], *,
                   lockfile: Path | None, log: Log | None = None) -> Locate:
    """The one rule for where each source's code comes from (see the module docstring)."""
    check_overrides(loaded, overrides)
    if lockfile is None:
        return lambda name: _from_spec(name, loaded, overrides)
    pins = locked_pins(lockfile)
    found: dict[str, OpSource] = {}

    def locate(name: str) -> OpSource:
        if name not in found:
            found[name] = _from_lockfile(name, pins, lockfile, loaded, overrides, log)
        return found[name]

    return locate


def _from_lockfile(name: str, pins: Mapping[str, PinnedSource], lockfile: Path,
                   loaded: LoadedSpec, overrides: Mapping[str, Path],
                   log: Log | None) -> OpSource:
    from builder import paths
    from builder.sources.fetch import fetch_source
    from builder.spec.envspec import GitSource

    pin = pins.get(name)
    if pin is None:
        raise CheckFailed(f"lockfile {lockfile} pins no source {name!r}",
                          hint="re-lock (`make lock`), or pass --lockfile for this spec")
    src = loaded.spec.sources.get(name)
    if log and isinstance(src, GitSource) and pin.rev is not None and src.rev != pin.rev:
        log(f"source {name}: the spec says rev {src.rev}, the lockfile {lockfile} pins "
            f"{pin.rev} ({(pin.commit or '')[:12]}): building the locked commit; re-lock to "
            "move it")
    root = fetch_source(pin, paths.sources_cache(), overrides=overrides,
                        spec_dir=loaded.path.parent)
    location = pin.url if pin.kind == "git" else str(root.resolve())
    origin = OpOrigin(source=name, location=location, commit=pin.commit, digest=pin.sha256)
    return OpSource(root=root / pin.subdir if pin.subdir else root, origin=origin, rev=pin.rev)


def _from_spec(name: str, loaded: LoadedSpec, overrides: Mapping[str, Path]) -> OpSource:
    from builder import paths
    from builder.sources.fetch import fetch_source, pin_source
    from builder.spec.envspec import PathSource

    src = loaded.spec.sources[name]
    if name in overrides:
        if not overrides[name].is_dir():
            raise UsageError(f"--source {name}={overrides[name]}: no such directory")
        where = str(src.git) if not isinstance(src, PathSource) else str(overrides[name])
        rev = None if isinstance(src, PathSource) else src.rev
        return OpSource(root=overrides[name], origin=OpOrigin(source=name, location=where),
                        rev=rev)
    if isinstance(src, PathSource):
        path = Path(loaded.source_path(name))
        return OpSource(root=path, origin=OpOrigin(source=name, location=str(path.resolve())),
                        rev=None)
    pinned = pin_source(name, src, loaded, overrides)
    root = fetch_source(pinned, paths.sources_cache(), spec_dir=loaded.path.parent)
    origin = OpOrigin(source=name, location=str(src.git), commit=pinned.commit)
    return OpSource(root=root / src.subdir if src.subdir else root, origin=origin, rev=src.rev)


def source_pins(origin: OpOrigin, rev: str | None) -> tuple[OpRequirement, ...]:
    """The matrix's pip pins for a git source, as requirements of its ops (why included)."""
    from builder.matrix.load import load_matrix
    from builder.matrix.query import pins_for

    if not origin.location or origin.location.startswith("/"):
        return ()
    rules = pins_for(load_matrix(), [(origin.location, origin.commit or rev)])
    return tuple(OpRequirement(text=pin, why=f"the matrix pin for {rule.repo}: {rule.why}")
                 for rule in rules for pin in rule.pip)


def skip_fixups(spec: EnvSpec, op_name: str) -> tuple[str, ...]:
    """The fixups the spec switched off for op ``op_name`` (``skip_fixups:``)."""
    return next((tuple(o.skip_fixups) for o in spec.ops if o.name == op_name), ())


@dataclass(frozen=True)
class OpsBuild:
    """Every op of one build: prepared (in the store), then installed."""

    results: list[OpBuildResult]
    prepared: list[PreparedOp]


def build_ops(ops: Sequence[OpPlan], resolution: Resolution, *, loaded: LoadedSpec,
              prefix: Path, locate: Locate, arch_list: tuple[str, ...] | None = None,
              log: Log | None = None) -> OpsBuild:
    """Prepare each op of ``ops`` from its located source, check the install plan, install."""
    arch = arch_list or tuple(resolution.arch_list)
    cxx_std = resolution.toolchain.cxx_std if resolution.toolchain else None
    prepared = []
    for op in ops:
        where = locate(op.source)
        op_dir = (where.root / op.path).resolve()
        if not (op_dir / "setup.py").exists() and not (op_dir / "pyproject.toml").exists():
            raise UsageError(f"op {op.name}: no setup.py or pyproject.toml in {op_dir}",
                             hint="set the op's path: to the directory holding setup.py")
        if log:
            log(f"op {op.name}: source {op_dir}, arch {';'.join(arch)}, "
                f"fixups named {list(op.fixups) or 'none'} (more may be chosen from the source)")
        prepared.append(prepare_op(OpBuildRequest(
            name=op.name, source_dir=op_dir, prefix=prefix, arch_list=arch,
            fixups=tuple(op.fixups), skip_fixups=skip_fixups(loaded.spec, op.name),
            cxx_std=cxx_std, origin=where.origin, sanity=op.sanity,
            requirements=source_pins(where.origin, where.rev), spec=loaded.path), log=log))
    return OpsBuild(results=install_prepared(prepared), prepared=prepared)


class BuildPlanRequest(BaseModel):
    """What ``envbuild build`` was asked to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: Path
    prefix: Path
    cuda: str | None = None
    arch_list: tuple[str, ...] | None = None
    sources: tuple[str, ...] = ()  # NAME=PATH
    only: tuple[str, ...] = ()
    check_reproducible: bool = False  # build each op again and compare the wheels
    lockfile: Path | None = None  # None: the spec's default lockfile, when there is one


def build_spec(req: BuildPlanRequest, log: Log | None = None) -> list[OpBuildResult]:
    """Build every (selected) op of the spec, check the install plan, then install them."""
    from builder.sources.fetch import parse_source_overrides
    from builder.spec.envspec import load_spec
    from builder.spec.places import lockfile_path

    loaded = load_spec(req.spec)
    overrides = parse_source_overrides(list(req.sources))
    check_overrides(loaded, overrides)
    resolution = resolve_for_host(loaded, req.cuda, log)
    ops = [op for op in resolution.ops if not req.only or op.name in req.only]
    if not ops and req.only:
        raise UsageError(f"{req.spec} has no ops named {', '.join(req.only)}",
                         hint="known: " + (", ".join(op.name for op in resolution.ops)
                                           or "none"))
    if not ops:
        if log:  # a spec without ops is complete once installed: nothing to build is success
            log(f"{req.spec}: the spec has no ops; nothing to build")
        return []
    lockfile = req.lockfile
    if lockfile is None:
        default = lockfile_path(loaded.path, loaded.spec.name, resolution.cuda)
        lockfile = default if default.is_file() else None
    if log:
        log(f"sources: pinned by {lockfile}" if lockfile else
            "sources: from the spec (no lockfile for this spec and CUDA)")
    locate = locate_sources(loaded, overrides, lockfile=lockfile, log=log)
    built = build_ops(ops, resolution, loaded=loaded, prefix=req.prefix, locate=locate,
                      arch_list=req.arch_list, log=log)
    if not req.check_reproducible:
        return built.results
    from builder.opbuild.repro_check import check_reproducible
    from builder.opbuild.store import Store

    return [r.model_copy(update={"reproducible": check_reproducible(p.req, p, Store(), log)})
            for r, p in zip(built.results, built.prepared, strict=True)]
