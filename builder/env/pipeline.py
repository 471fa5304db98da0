"""``envbuild env``: resolve -> lock -> install -> build -> sanity, each skipped when up to date.

Default prefix: ``<project>/.envbuild/envs/<name>-<cuXY|cpu>``, where ``<project>``
is the directory holding ``envspecs/`` (or the spec's own directory when the spec
is elsewhere).  ``--prefix`` overrides it.

No-op contract: ``<prefix>/.envbuild/env.json`` records the sha256 of the spec
file and of the lockfile, the CUDA asked for and the stages completed.  When
both files are byte-identical and every stage completed, nothing else is
imported or run (well under a second).  Any change falls through to the full
pipeline, where each stage has its own up-to-date check.

The whole run holds the per-prefix lock, so a second ``make env`` waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import Field

from builder.env.stages import STAGE_NAMES, STAGES, Action, Context, EnvRequest
from builder.models import Frozen as _Frozen
from builder.spec.places import env_prefix as default_prefix  # the one rule (module docstring)
from builder.util.fs import atomic_write_text
from builder.util.hashing import sha256_file

ENV_SCHEMA = 1



class StageResult(_Frozen):
    """A row of the summary table."""

    stage: str
    action: Action
    seconds: float
    detail: str = ""


class EnvResult(_Frozen):
    """What ``env`` did."""

    prefix: Path
    lockfile: Path | None
    stages: tuple[StageResult, ...]

    @property
    def ok(self) -> bool:
        """False when a needed stage was not available."""
        return all(s.action != "missing" for s in self.stages)


class EnvMarker(_Frozen):
    """``<prefix>/.envbuild/env.json``: what the last complete ``env`` run saw."""

    schema_version: int = ENV_SCHEMA
    spec_sha256: str
    lockfile: str
    lockfile_sha256: str
    cuda: str
    stages: dict[str, str] = Field(default_factory=dict)


def env_lockfile(spec_path: Path, cuda: str | None, lockfile: Path | None) -> Path | None:
    """The existing lockfile ``env`` will install (None when it will lock one, or the spec
    does not load: the run itself reports that)."""
    from builder.errors import EnvbuildError
    from builder.resolve.resolver import target_cuda
    from builder.spec.envspec import load_spec
    from builder.spec.places import lockfile_path

    if lockfile is not None:
        return lockfile if lockfile.is_file() else None
    try:
        loaded = load_spec(spec_path)
        path = lockfile_path(loaded.path, loaded.spec.name, target_cuda(loaded, cuda))
    except EnvbuildError:
        return None
    return path if path.is_file() else None


def marker_path(prefix: Path) -> Path:
    """Where the env marker lives (inside the current generation)."""
    return prefix / ".envbuild" / "env.json"


def read_marker(prefix: Path) -> EnvMarker | None:
    """The marker of the current generation, or None."""
    try:
        return EnvMarker.model_validate(json.loads(marker_path(prefix).read_text()))
    except (OSError, ValueError):
        return None


def up_to_date(req: EnvRequest, prefix: Path, cuda: str) -> EnvMarker | None:
    """The marker when nothing changed since the last complete run, else None."""
    marker = read_marker(prefix)
    if marker is None or marker.cuda != cuda:
        return None
    lockfile = Path(marker.lockfile)
    if req.lockfile is not None and req.lockfile.resolve() != lockfile:
        return None
    if not lockfile.is_file() or set(marker.stages) != set(STAGE_NAMES[3:]):
        return None
    if sha256_file(req.spec) != marker.spec_sha256:
        return None
    return marker if sha256_file(lockfile) == marker.lockfile_sha256 else None


def run_env(req: EnvRequest) -> EnvResult:
    """Run every stage (or none, when nothing changed)."""
    from builder.resolve.resolver import target_cuda
    from builder.spec.envspec import load_spec

    t0 = time.monotonic()
    loaded = load_spec(req.spec)
    cuda = target_cuda(loaded, req.cuda)
    prefix = req.prefix or default_prefix(req.spec, loaded.spec.name, cuda)
    marker = up_to_date(req, prefix, cuda)
    if marker is not None:
        return _noop_result(prefix, marker, time.monotonic() - t0)
    from builder.install.generations import Generations

    gens = Generations(prefix)
    gens.check_prefix()
    with gens.locked():
        ctx = Context(req, loaded, gens, cuda)
        results = [_timed(name, fn, ctx) for name, fn in STAGES]
        if all(r.action != "missing" for r in results) and ctx.lockfile is not None:
            _write_marker(ctx, results)
    return EnvResult(prefix=gens.prefix, lockfile=ctx.lockfile, stages=tuple(results))


def _noop_result(prefix: Path, marker: EnvMarker, seconds: float) -> EnvResult:
    rows = tuple(StageResult(stage=n, action="up to date", seconds=seconds if i == 0 else 0.0)
                 for i, n in enumerate(STAGE_NAMES))
    return EnvResult(prefix=prefix, lockfile=Path(marker.lockfile), stages=rows)


def _timed(name: str, fn: Callable[[Context], tuple[Action, str]], ctx: Context) -> StageResult:
    from builder.util import progress

    t0 = time.monotonic()
    with progress.stage("env", name):
        action, detail = fn(ctx)
    return StageResult(stage=name, action=action, seconds=time.monotonic() - t0, detail=detail)


def _write_marker(ctx: Context, results: list[StageResult]) -> None:
    assert ctx.lockfile is not None
    marker = EnvMarker(
        spec_sha256=sha256_file(ctx.req.spec), lockfile=str(ctx.lockfile.resolve()),
        lockfile_sha256=sha256_file(ctx.lockfile), cuda=ctx.cuda,
        stages={r.stage: r.action for r in results[3:]})
    atomic_write_text(marker_path(ctx.prefix), json.dumps(marker.model_dump(), indent=2) + "\n")
