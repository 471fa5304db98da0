"""The two entry points behind :func:`builder.lock.lock` and :func:`builder.lock.check`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.lock.lockfile import (
    EnvbuildMeta,
    build_lockfile,
    envbuild_metadata,
    locked_dependencies,
    packages_digest,
    read_lockfile,
    render_lockfile,
)
from builder.lock.pipeline import (
    LockResult,
    _Prepared,
    _Timer,
    exclude_newer_cutoff,
    make_meta,
    pip_origins,
    prepare,
    relpath,
    solve_conda,
)
from builder.lock.render import environment_path, pip_option_lines, render_environment
from builder.util.fs import atomic_write_many

if TYPE_CHECKING:
    from builder.lock import LockRequest
    from builder.lock.conda_layer import CondaRecord
    from builder.lock.pypi_layer import PipRecord, PypiRequest


def _pypi_request(req: LockRequest, records: list[CondaRecord],
                  previous: list[PipRecord], extra: tuple[str, ...] = ()) -> PypiRequest:
    from builder.lock.pypi_layer import PypiRequest, python_provided

    res, spec = req.resolution, req.spec.spec
    requirements = tuple(dict.fromkeys([*res.pip, *extra]))
    python = next((r.version for r in records if r.name == "python"), res.python)
    opts = spec.pip_options
    spec_dir = req.spec.path.resolve().parent
    find_links = tuple(link if "://" in link else str((spec_dir / link).resolve())
                       for link in opts.find_links)
    origins = pip_origins(req.spec, res.pip)
    origins.update({r: "the build toolchain (--fill-gaps pypi)" for r in extra})
    return PypiRequest(
        requirements=requirements, python_version=python,
        glibc=res.virtual_packages.get("__glibc", "2.17"), provided=python_provided(records),
        index_url=opts.index_url, extra_index_urls=(*opts.extra_index_urls,
                                                    *res.pip_index_urls),
        find_links=find_links, no_index=opts.no_index,
        exclude_newer=exclude_newer_cutoff(spec.exclude_newer),
        origins=origins,
        preferences=tuple((p.name, p.version) for p in previous), refresh=req.refresh)


def _solve_pypi(req: LockRequest, records: list[CondaRecord],
                extra: tuple[str, ...] = ()) -> tuple[list[PipRecord], list[str], str | None]:
    """The pip records, their warnings and the PyPI layer's input key.

    The previous lockfile's records are the answer when it was locked from the same
    key (see :mod:`builder.lock.pypi_cache`); otherwise uv runs, preferring its pins.
    """
    from builder.lock.pypi_cache import pypi_key
    from builder.lock.pypi_layer import solve_pypi

    if not req.resolution.pip and not extra:
        return [], [], None
    old_key, previous = _previous_pip(req.output, req.spec.spec.platform)
    preq = _pypi_request(req, records, previous, extra)
    key = pypi_key(preq)
    if key == old_key and not req.refresh:
        return previous, _sdist_warnings(preq, previous), key
    pip, warnings = solve_pypi(preq)
    return pip, warnings, key


def _previous_pip(path: Path, platform: str) -> tuple[str | None, list[PipRecord]]:
    """The previous lockfile's PyPI key and pip records (nothing when unreadable or edited)."""
    from pydantic import ValidationError

    from builder.errors import EnvbuildError
    from builder.lock.pypi_layer import PipRecord

    if not path.is_file():
        return None, []
    try:
        lockfile = read_lockfile(path)
        meta = envbuild_metadata(lockfile, path)
        if packages_digest(lockfile.package) != meta.packages_digest:
            return None, []  # edited by hand: neither its key nor its pins are trusted
        pins = [PipRecord(name=p.name, version=p.version, url=p.url, sha256=p.hash.sha256 or "",
                          kind="wheel" if p.url.split("#")[0].endswith(".whl") else "sdist")
                for p in lockfile.package if p.manager == "pip" and p.platform == platform]
        if not all(len(p.sha256) == 64 for p in pins):
            return None, []
    except (EnvbuildError, ValidationError, AttributeError, TypeError):
        return None, []
    return meta.pypi_key, sorted(pins, key=lambda r: r.name)


def _sdist_warnings(preq: PypiRequest, pins: list[PipRecord]) -> list[str]:
    from builder.lock.pypi_layer import sdist_warning

    return [sdist_warning(preq, p.name, p.version) for p in pins if p.kind == "sdist"]


def _texts(req: LockRequest, prep: _Prepared, packages: list[Any], meta_args: dict[str, Any],
           channels: list[str]) -> tuple[str, str, EnvbuildMeta]:
    output = req.output
    spec_rel = relpath(req.spec.path, output.parent)
    probe = build_lockfile(packages, make_meta(req, prep, packages_digest="", **meta_args),
                           [], spec_rel)
    meta = make_meta(req, prep, packages_digest=packages_digest(probe.package), **meta_args)
    model = build_lockfile(packages, meta, channels, spec_rel)
    shown_spec = relpath(req.spec.path, output.parent.parent)
    text = render_lockfile(model, shown_spec, req.resolution.cuda)
    options = pip_option_lines(req.spec, req.resolution, output.parent)
    return text, render_environment(model, meta, output.name, options), meta


def run_lock(req: LockRequest) -> LockResult:
    """Every stage, timed; files are written only when everything succeeded."""
    from builder.sources.fetch import pin_sources

    timer = _Timer()
    with timer("prepare"):
        prep = prepare(req)
    # sources first: an unreachable git URL fails in seconds, not after both solves
    with timer("sources"):
        sources = pin_sources(req.spec, req.source_overrides)
    with timer("conda"):
        conda = solve_conda(req, prep)
        records = conda.records
    with timer("pypi"):
        pip, pip_warnings, pypi_key = _solve_pypi(req, records, conda.pip_extra)
    with timer("write"):
        packages = locked_dependencies(records, pip, req.spec.spec.platform)
        meta_args = {"nvcc": conda.nvcc, "warnings": [*conda.warnings, *pip_warnings],
                     "records": records, "sources": sources, "pypi_key": pypi_key,
                     "toolchain": conda.pieces}
        channels = [e.url for e in conda.plan.all_entries]
        text, env_text, meta = _texts(req, prep, packages, meta_args, channels)
        env_path = environment_path(req.output)
        # both written and synced before either is published; the lockfile last (it is
        # what others read): a killed lock leaves both old files, or both new
        atomic_write_many([(env_path, env_text.encode("utf-8")),
                           (req.output, text.encode("utf-8"))])
    return LockResult(path=req.output, environment_path=env_path, input_hash=meta.input_hash,
                      conda_count=len(records), pip_count=len(pip), timings=timer.timings,
                      warnings=meta.warnings, nvcc=conda.nvcc, toolchain=meta.toolchain)


def _diff_list(kind: str, old: list[str], new: list[str]) -> list[str]:
    added = [s for s in new if s not in old]
    removed = [s for s in old if s not in new]
    out = []
    if added:
        out.append(f"{kind} specs added: {', '.join(added)}")
    if removed:
        out.append(f"{kind} specs removed: {', '.join(removed)}")
    return out


_WHAT = {
    "lock_schema": "envbuild's lock schema changed",
    "spec": "the envspec changed",
    "resolution": "the resolution changed (torch/CUDA/toolchain/conda or pip pins)",
    "matrix_version": "the compatibility matrix data changed",
    "channels": "the channels (or the snapshot's content) changed",
    "solver": "the solver changed",
}


def run_check(req: LockRequest) -> list[str]:
    """Differences between what ``req`` would lock and the file at ``req.output``."""
    if not req.output.is_file():
        return [f"{req.output} does not exist; run `envbuild lock` to create it"]
    lockfile = read_lockfile(req.output)
    meta = envbuild_metadata(lockfile, req.output)
    prep = prepare(req)
    problems = []
    for key, new in prep.components.items():
        if not req.check_channels and key in {"channels", "solver"}:
            continue
        old = meta.inputs.get(key)
        if old != new:
            detail = f" ({old} -> {new})" if key in {"matrix_version", "solver",
                                                     "lock_schema"} else ""
            problems.append(_WHAT.get(key, f"input {key!r} changed") + detail)
    problems += _diff_list("conda", meta.requested.get("conda", []), list(prep.base_specs))
    problems += _diff_list("pip", meta.requested.get("pip", []), list(req.resolution.pip))
    if packages_digest(lockfile.package) != meta.packages_digest:
        problems.append("the lockfile's package records were edited by hand")
    problems += _check_path_sources(req, meta)
    env_path = environment_path(req.output)
    expected = render_environment(lockfile, meta, req.output.name,
                                  pip_option_lines(req.spec, req.resolution, req.output.parent))
    if not env_path.is_file() or env_path.read_text(encoding="utf-8") != expected:
        problems.append(f"{env_path.name} is missing or does not match the lockfile")
    return problems


def _check_path_sources(req: LockRequest, meta: EnvbuildMeta) -> list[str]:
    from builder.spec.envspec import PathSource
    from builder.util.hashing import default_source_exclude, tree_digest

    out = []
    for pinned in meta.sources:
        src = req.spec.spec.sources.get(pinned.name)
        if pinned.kind != "path" or not isinstance(src, PathSource):
            continue
        root = Path(req.source_overrides.get(pinned.name) or req.spec.source_path(pinned.name))
        if not root.is_dir() or tree_digest(root, default_source_exclude) != pinned.sha256:
            out.append(f"path source {pinned.name!r} ({root}) changed since it was locked")
    return out
