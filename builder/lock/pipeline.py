"""``lock`` and ``check``: a list of named, timed stages from a resolution to a lockfile.

Stages: channels (plan + identity) -> conda (nvcc choice + solve) -> pypi (uv) ->
sources (pin) -> write (lockfile + environment.yml, atomically, lockfile last).
Any failure raises before anything is written, so a lockfile is whole or absent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import ConflictError
from builder.lock import inputs
from builder.lock.buildtools import (
    OWN_LOGIC,
    LockedPiece,
    Missing,
    choose_pieces,
    incomplete_warning,
    missing_locked,
    refuse,
    would_complete,
)
from builder.lock.channels import ChannelPlan, identity, plan_channels, provenance
from builder.lock.channels import with_qualified_channel as _qualify
from builder.lock.conda_layer import (
    CondaRecord,
    CondaSolver,
    CondaSolveRequest,
    choose_nvcc,
    get_solver,
    target_virtual_packages,
)
from builder.lock.lockfile import LOCK_SCHEMA, EnvbuildMeta
from builder.util.redact import redact

if TYPE_CHECKING:
    from builder.lock import LockRequest
    from builder.resolve.resolution import Resolution
    from builder.spec.envspec import LoadedSpec


@dataclass(frozen=True)
class LockResult:
    """What ``lock`` produced."""

    path: Path
    environment_path: Path
    input_hash: str
    conda_count: int
    pip_count: int
    timings: dict[str, float]
    warnings: tuple[str, ...]
    nvcc: str | None = None
    toolchain: tuple[LockedPiece, ...] = ()  # the op build toolchain as locked


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        from builder.util import progress

        start = time.perf_counter()
        try:
            with progress.stage("lock", stage):
                yield
        finally:
            self.timings[stage] = round(time.perf_counter() - start, 4)


def default_lockfile_path(spec: LoadedSpec, resolution: Resolution) -> Path:
    """``<repo>/lockfiles/<name>-cu<XY>.conda-lock.yml``; ``<repo>`` is the spec dir's parent.

    Specs live in ``<repo>/envspecs/``, so lockfiles land in ``<repo>/lockfiles/``.
    """
    from builder.spec.places import lockfile_path

    return lockfile_path(spec.path, resolution.name, resolution.cuda)


def exclude_newer_cutoff(day: dt.date | None) -> dt.datetime | None:
    """``exclude_newer: 2023-10-12`` keeps everything published on that day or before."""
    if day is None:
        return None
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)


def base_conda_specs(res: Resolution) -> list[str]:
    """The resolution's conda specs plus toolchain companions and pip (no nvcc yet)."""
    specs = list(res.conda)
    if res.toolchain is not None:
        specs += list(res.toolchain.extra_conda)
    if res.host_compiler.name == "gxx" and res.host_compiler.spec:
        specs.append(res.host_compiler.spec)
    names = {s.rpartition("::")[2].split()[0] for s in specs}
    if res.pip and "pip" not in names:
        specs.append("pip")
    return list(dict.fromkeys(specs))


def qualified_channels(res: Resolution) -> tuple[str, ...]:
    """Channels named by ``channel::`` specs of the resolution (the toolchain's labels)."""
    specs = [*res.conda]
    if res.toolchain is not None:
        tc = res.toolchain
        specs += [*tc.extra_conda, *tc.nvcc_fallback_specs, *([tc.nvcc_spec] if tc.nvcc_spec
                                                              else [])]
    specs += [o.spec for p in res.build_toolchain for o in p.providers if o.kind == "conda"]
    return tuple(dict.fromkeys(s.rpartition("::")[0] for s in specs if "::" in s))


def conda_origins(loaded: LoadedSpec, res: Resolution, specs: list[str]) -> dict[str, str]:
    """Where each conda spec came from, in the spec's terms (``key at path:line``)."""
    data = loaded.located.data
    spec_conda = {str(s).split()[0]: i for i, s in enumerate(data.get("conda") or [])}
    keyed = {"python": "python", "pytorch": "torch", "torchvision": "torch", "torch": "torch"}
    out: dict[str, str] = {}
    for spec in specs:
        name = spec.rpartition("::")[2].split()[0]
        if name in spec_conda:
            out[spec] = f"conda[{spec_conda[name]}] at {loaded.where('conda', spec_conda[name])}"
        elif name in keyed:
            out[spec] = f"'{keyed[name]}:' at {loaded.where(keyed[name])} (resolved to {spec})"
        elif "cuda" in name and "cuda" in data:
            out[spec] = f"'cuda:' at {loaded.where('cuda')} (CUDA {res.cuda} stack)"
        else:
            out[spec] = f"the resolution for CUDA {res.cuda} (toolchain/companions)"
    return out


def pip_origins(loaded: LoadedSpec, reqs: tuple[str, ...]) -> dict[str, str]:
    """Where each pip requirement came from."""
    spec_pip = [str(p) for p in (loaded.located.data.get("pip") or [])]
    return {r: (f"pip[{spec_pip.index(r)}] at {loaded.where('pip', spec_pip.index(r))}"
                if r in spec_pip else "the resolution") for r in reqs}


@dataclass(frozen=True)
class _Prepared:
    plan: ChannelPlan
    solver: CondaSolver
    base_specs: tuple[str, ...]
    components: dict[str, str]
    input_hash: str
    vps: dict[str, str]


def prepare(req: LockRequest) -> _Prepared:
    """Channel plan, solver and input components (no solving, no network for snapshots)."""
    res = req.resolution
    plan = plan_channels(res.channels, snapshot=req.channel_snapshot,
                         channel_args=req.channels, optional=qualified_channels(res))
    solver = get_solver(req.solver)
    parts = inputs.components(req.spec, res, identity(plan, (req.spec.spec.platform, "noarch")),
                              solver.name, LOCK_SCHEMA)
    return _Prepared(plan, solver, tuple(base_conda_specs(res)), parts,
                     inputs.input_hash(parts, LOCK_SCHEMA),
                     target_virtual_packages(res.virtual_packages, res.cuda))


def _qualified(plan: ChannelPlan, specs: list[str]) -> tuple[ChannelPlan, list[str]]:
    """Channel-qualified specs point at the plan's URL for that channel (added if needed)."""
    out = []
    for spec in specs:
        channel, sep, rest = spec.rpartition("::")
        if not sep:
            out.append(spec)
            continue
        plan, url = _qualify(plan, channel)
        out.append(rest if url is None else f"{url}::{rest}")
    return plan, out


@dataclass(frozen=True)
class CondaResult:
    """The conda layer's output: records, the nvcc spec used, warnings, the final channels,
    the build pieces as locked and the PyPI header wheels chosen to fill gaps."""

    records: list[CondaRecord]
    nvcc: str | None
    warnings: list[str]
    plan: ChannelPlan
    pieces: tuple[LockedPiece, ...] = ()
    pip_extra: tuple[str, ...] = ()


def _context(res: Resolution) -> str:
    return f"{res.name}, CUDA {res.cuda}"


def _nvcc(req: LockRequest, prep: _Prepared, sreq: CondaSolveRequest,
          missing: list[Missing]) -> tuple[str | None, str | None]:
    """(spec to lock, warning); a missing nvcc becomes a gap in ``missing``."""
    tc = req.resolution.toolchain
    if tc is None or tc.nvcc_source != "conda" or not tc.nvcc_spec:
        return None, None
    try:
        choice = choose_nvcc(prep.solver, sreq, tc.nvcc_spec, tc.nvcc_fallback_specs)
    except ConflictError:
        piece = next((p for p in req.resolution.build_toolchain if p.piece == "nvcc"), None)
        if piece is None:
            raise
        missing.append(Missing(piece, (tc.nvcc_spec, *tc.nvcc_fallback_specs),
                               would_complete(piece, frozenset(req.fill_gaps))))
        return None, None
    return choice.spec, choice.warning


def _own_pieces(res: Resolution, nvcc: str | None) -> list[LockedPiece]:
    """The compiler and nvcc pieces as the lock chose them (by their own logic)."""
    out = []
    for piece in res.build_toolchain:
        spec = {"compiler": res.host_compiler.spec, "nvcc": nvcc}.get(piece.piece)
        if piece.piece in OWN_LOGIC and spec:
            first = piece.providers[0].spec if piece.providers else None
            out.append(LockedPiece(piece=piece.piece, kind="conda", spec=spec,
                                   header=piece.headers[0] if piece.headers else None,
                                   reason=None if spec == first else
                                   f"the channels have no record for {first!r}"))
    return out


def solve_conda(req: LockRequest, prep: _Prepared) -> CondaResult:
    """The conda layer: the build pieces (nvcc with fallbacks, headers) and the solve."""
    res, loaded = req.resolution, req.spec
    specs = list(prep.base_specs)
    tc = res.toolchain
    nvcc_specs = [tc.nvcc_spec, *tc.nvcc_fallback_specs] if tc and tc.nvcc_spec else []
    nvcc_specs += list(tc.extra_conda) if tc else []
    plan, _ = _qualified(prep.plan, [*nvcc_specs, *(o.spec for p in res.build_toolchain
                                                    for o in p.providers if o.kind == "conda")])
    sreq = CondaSolveRequest(specs=(), plan=plan, platform=loaded.spec.platform,
                             virtual_packages=prep.vps, context=_context(res),
                             exclude_newer=exclude_newer_cutoff(loaded.spec.exclude_newer))
    warnings: list[str] = []
    for companion in tc.extra_conda if tc is not None else ():
        if not prep.solver.has_match(sreq, companion):
            specs.remove(companion)
            warnings.append(f"toolchain: the channels have no record for the companion "
                            f"{companion!r}; it is not locked (op builds that need it will "
                            "report it missing)")
    missing: list[Missing] = []
    nvcc, nvcc_warning = _nvcc(req, prep, sreq, missing)
    if nvcc:
        specs.append(nvcc)
    warnings.extend([nvcc_warning] if nvcc_warning else [])
    tools = choose_pieces(res.build_toolchain, lambda s: prep.solver.has_match(sreq, s),
                          frozenset(req.fill_gaps))
    missing.extend(tools.missing)
    warnings += tools.warnings + [incomplete_warning(m) for m in missing]
    specs += [s for s in tools.conda if s not in specs]
    plan, solve_specs = _qualified(plan, specs)
    origins = conda_origins(loaded, res, specs)
    origins.update({q: origins[s] for q, s in zip(solve_specs, specs, strict=True)})
    sreq = replace(sreq, specs=tuple(solve_specs), plan=plan, origins=origins)
    warnings[:0] = [f"channels: the snapshot has no channel {c!r}; specs naming it find no "
                    "records" for c in plan.missing]
    records = prep.solver.solve(sreq)  # a conflict elsewhere is reported first
    if missing and not req.allow_incomplete:
        raise refuse(missing, _context(res))
    no_sha = sorted(r.file_name for r in records if not r.sha256)
    if no_sha:
        warnings.append("conda: the channel metadata has md5 but no sha256 for "
                        + ", ".join(no_sha) + " (recorded as published; md5 is verified)")
    pieces = [*_own_pieces(res, nvcc), *tools.locked, *missing_locked(missing)]
    order = {p.piece: i for i, p in enumerate(res.build_toolchain)}
    pieces.sort(key=lambda p: order.get(p.piece, len(order)))
    return CondaResult(records, nvcc, warnings, plan, tuple(pieces), tuple(tools.pip))


def relpath(path: Path, start: Path) -> str:
    """POSIX relative path (for metadata that must not depend on the machine)."""
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def newest_record(records: list[CondaRecord]) -> str | None:
    """Date of the newest conda record (provenance)."""
    stamps = [r.timestamp_ms for r in records if r.timestamp_ms]
    if not stamps:
        return None
    return dt.datetime.fromtimestamp(max(stamps) / 1000, tz=dt.timezone.utc).date().isoformat()


def make_meta(req: LockRequest, prep: _Prepared, *, nvcc: str | None, warnings: list[str],
              records: list[CondaRecord], sources: tuple[object, ...],
              packages_digest: str, pypi_key: str | None = None,
              toolchain: tuple[LockedPiece, ...] = ()) -> EnvbuildMeta:
    """envbuild's lockfile metadata."""
    res = req.resolution
    return EnvbuildMeta(
        lock_schema=LOCK_SCHEMA, input_hash=prep.input_hash, spec_name=res.name, cuda=res.cuda,
        platform=req.spec.spec.platform, solver=prep.solver.name, channels=prep.plan.kind,
        provenance=provenance(prep.plan), nvcc=redact(nvcc) if nvcc else None,
        newest_record=newest_record(records), inputs=prep.components,
        requested={"conda": list(prep.base_specs), "pip": list(res.pip)},
        virtual_packages=prep.vps, sources=tuple(sources),  # type: ignore[arg-type]
        warnings=tuple(redact(w) for w in warnings),
        packages_digest=packages_digest, pypi_key=pypi_key, toolchain=toolchain,
    )
