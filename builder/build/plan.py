"""From an envspec to op builds: resolve, locate each op's source, build each op.

The arch list, fixups and C++ standard come from :func:`builder.resolve.resolve`
(``--arch`` overrides the arch list).  Sources: ``--source NAME=PATH`` uses a
local checkout; a ``path:`` source is used in place; a ``git:`` source is pinned
and fetched (hash-verified) by :mod:`builder.sources`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from builder.build.deps import OpRequirement
from builder.build.ops import OpBuildRequest, OpBuildResult, install_prepared, prepare_op
from builder.build.records import OpOrigin
from builder.errors import UsageError


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


def resolve_for_host(loaded: Any, cuda: str | None,
                     warn: Callable[[str], None] | None = None) -> Any:
    """Resolve for the GPUs of this machine, so ops are built for them and nothing else.

    Without a GPU (a build server, CI) the torch build's own arch list is used.  A GPU the
    matrix does not know falls back to that list with a warning; a GPU this CUDA cannot
    target at all is a conflict, reported before any compile.
    """
    from builder.host import detect_driver
    from builder.resolve import ResolveRequest, resolve

    names = tuple(dict.fromkeys(g.name for g in detect_driver().gpus))
    if not names:
        return resolve(loaded, ResolveRequest(cuda=cuda))
    try:
        return resolve(loaded, ResolveRequest(cuda=cuda, gpus=names))
    except UsageError as exc:
        if warn:
            warn(f"{exc.message}; building for the torch build's own arch list instead")
        return resolve(loaded, ResolveRequest(cuda=cuda))


def _source_dir(name: str, loaded: Any, overrides: dict[str, Path]) -> tuple[Path, OpOrigin]:
    """The directory holding source ``name`` (an override, the path source, or a fetch),
    and where its code came from (for records, messages and the matrix's pins)."""
    from builder import paths
    from builder.sources import fetch_source, pin_source
    from builder.spec import PathSource

    src = loaded.spec.sources[name]
    if name in overrides:
        if not overrides[name].is_dir():
            raise UsageError(f"--source {name}={overrides[name]}: no such directory")
        where = str(src.git) if not isinstance(src, PathSource) else str(overrides[name])
        return overrides[name], OpOrigin(source=name, location=where)
    if isinstance(src, PathSource):
        path = Path(loaded.source_path(name))
        return path, OpOrigin(source=name, location=str(path.resolve()))
    pinned = pin_source(name, src, loaded, overrides)
    root = fetch_source(pinned, paths.sources_cache(), spec_dir=loaded.path.parent)
    origin = OpOrigin(source=name, location=str(src.git), commit=pinned.commit)
    return (root / src.subdir if src.subdir else root), origin


def source_pins(origin: OpOrigin, rev: str | None) -> tuple[OpRequirement, ...]:
    """The matrix's pip pins for a git source, as requirements of its ops (why included)."""
    from builder.matrix.load import load_matrix
    from builder.matrix.query import pins_for

    if not origin.location or origin.location.startswith("/"):
        return ()
    rules = pins_for(load_matrix(), [(origin.location, origin.commit or rev)])
    return tuple(OpRequirement(text=pin, why=f"the matrix pin for {rule.repo}: {rule.why}")
                 for rule in rules for pin in rule.pip)


def skip_fixups(spec: Any, op_name: str) -> tuple[str, ...]:
    """The fixups the spec switched off for op ``op_name`` (``skip_fixups:``)."""
    return next((tuple(o.skip_fixups) for o in spec.ops if o.name == op_name), ())


def build_spec(req: BuildPlanRequest,
               log: Callable[[str], None] | None = None) -> list[OpBuildResult]:
    """Build every (selected) op of the spec, check the install plan, then install them."""
    from builder.sources import parse_source_overrides
    from builder.spec import GitSource, load_spec

    loaded = load_spec(req.spec)
    overrides = parse_source_overrides(list(req.sources))
    unknown = sorted(set(overrides) - set(loaded.spec.sources))
    if unknown:
        raise UsageError(f"--source names unknown source(s): {', '.join(unknown)}",
                         hint="known: " + ", ".join(sorted(loaded.spec.sources)))
    resolution = resolve_for_host(loaded, req.cuda, log)
    arch_list = req.arch_list or tuple(resolution.arch_list)
    cxx_std = resolution.toolchain.cxx_std if resolution.toolchain else None
    ops = [op for op in resolution.ops if not req.only or op.name in req.only]
    if not ops and req.only:
        raise UsageError(f"{req.spec} has no ops named {', '.join(req.only)}",
                         hint="known: " + (", ".join(op.name for op in resolution.ops)
                                           or "none"))
    if not ops and log:
        # a spec without ops is complete once installed: nothing to build is success
        log(f"{req.spec}: the spec has no ops; nothing to build")
    prepared = []
    for op in ops:
        root, origin = _source_dir(op.source, loaded, overrides)
        op_dir = (root / op.path).resolve()
        if not (op_dir / "setup.py").exists() and not (op_dir / "pyproject.toml").exists():
            raise UsageError(f"op {op.name}: no setup.py or pyproject.toml in {op_dir}",
                             hint="set the op's path: to the directory holding setup.py")
        if log:
            log(f"op {op.name}: source {op_dir}, arch {';'.join(arch_list)}, "
                f"fixups named {list(op.fixups) or 'none'} (more may be chosen from the source)")
        src = loaded.spec.sources[op.source]
        rev = src.rev if isinstance(src, GitSource) else None
        op_req = OpBuildRequest(
            name=op.name, source_dir=op_dir, prefix=req.prefix, arch_list=arch_list,
            fixups=tuple(op.fixups), skip_fixups=skip_fixups(loaded.spec, op.name),
            cxx_std=cxx_std, origin=origin, sanity=op.sanity,
            requirements=source_pins(origin, rev), spec=req.spec)
        prepared.append(prepare_op(op_req, log=log))
    results = install_prepared(prepared)
    if not req.check_reproducible:
        return results
    from builder.build.repro_check import check_reproducible
    from builder.build.store import Store

    return [r.model_copy(update={"reproducible": check_reproducible(p.req, p, Store(), log)})
            for r, p in zip(results, prepared, strict=True)]
