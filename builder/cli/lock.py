"""``envbuild lock``: spec -> resolution -> hash-pinned lockfile (or ``--check`` it)."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli import color, echo_json
from builder.errors import CheckFailed
from builder.lock.conda_layer import SOLVERS


@click.command("lock")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cuda", help="target CUDA version X.Y (default: the spec's cuda.default)")
@click.option("--channel-snapshot", type=click.Path(file_okay=False, path_type=Path),
              help="solve offline from DIR/<channel>/<subdir>/repodata.json + channels.json")
@click.option("--channel", "channels", multiple=True, metavar="URL|NAME=URL",
              help="mirror: NAME=URL replaces one channel; bare URLs replace them all")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="lockfile path (default: lockfiles/<name>-cu<XY>.conda-lock.yml)")
@click.option("--check", is_flag=True, help="exit 1 and say what changed when the lockfile "
              "is stale; write nothing")
@click.option("--solver", default="rattler", show_default=True,
              type=click.Choice(sorted(SOLVERS)), help="conda solver backend")
@click.option("--source", "sources", multiple=True, metavar="NAME=PATH",
              help="read a source from a local git repo (bare or not) or a plain directory")
@click.option("--refresh", is_flag=True, help="ask the PyPI index even when the previous "
              "lockfile's inputs are unchanged or uv's cache is fresh")
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object")
@click.option("--fill-gaps", "fill_gaps", multiple=True, type=click.Choice(["pypi"]),
              help="fill build-toolchain pieces the channels lack from the matrix's "
              "alternative providers of this kind (pypi: exact-version NVIDIA header wheels)")
@click.option("--allow-incomplete", is_flag=True, help="lock even when a build-toolchain "
              "piece has no provider; the lockfile records each gap and later stages print it")
def lock(spec_path: Path, cuda: str | None, channel_snapshot: Path | None,
         channels: tuple[str, ...], output: Path | None, check: bool, solver: str,
         sources: tuple[str, ...], refresh: bool, as_json: bool, fill_gaps: tuple[str, ...],
         allow_incomplete: bool) -> None:
    """Lock SPEC for one CUDA version into a conda-lock lockfile with every hash."""
    from builder.lock import LockRequest, default_lockfile_path
    from builder.lock import check as check_lock
    from builder.lock import lock as run_lock
    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.sources.fetch import parse_source_overrides
    from builder.spec.envspec import load_spec

    loaded = load_spec(spec_path)
    resolution = resolve(loaded, ResolveRequest(cuda=cuda))
    path = output or default_lockfile_path(loaded, resolution)
    req = LockRequest(spec=loaded, resolution=resolution, output=path,
                      channel_snapshot=channel_snapshot, channels=channels, solver=solver,
                      source_overrides=parse_source_overrides(sources), refresh=refresh,
                      fill_gaps=tuple(dict.fromkeys(fill_gaps)), allow_incomplete=allow_incomplete)
    if check:
        problems = check_lock(req)
        if problems:
            again = _relock(spec_path, resolution.cuda, output, channel_snapshot, channels,
                            solver, sources, fill_gaps)
            raise CheckFailed(f"{path} is stale:\n" + "\n".join(f"  - {p}" for p in problems),
                              hint=f"re-lock with `{again}` and commit the result")
        if as_json:
            echo_json({"path": str(path), "up_to_date": True, "input_hash": _short(req, path)})
            return
        click.echo(f"{path}: up to date (input hash {_short(req, path)})")
        return
    result = run_lock(req)
    if as_json:
        echo_json({"path": str(result.path), "environment_path": str(result.environment_path),
                   "input_hash": result.input_hash, "cuda": resolution.cuda,
                   "conda_packages": result.conda_count, "pip_packages": result.pip_count,
                   "nvcc": result.nvcc, "warnings": list(result.warnings),
                   "toolchain": [p.model_dump(mode="json", exclude_none=True)
                                 for p in result.toolchain],
                   "timings": dict(result.timings)})
        return
    for warning in result.warnings:
        click.secho("warning: ", fg="yellow", err=True, nl=False, color=color())
        click.echo(warning, err=True)
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    click.echo(f"locked {resolution.name} for CUDA {resolution.cuda}: "
               f"{result.conda_count} conda + {result.pip_count} pip packages"
               + (f", nvcc {result.nvcc}" if result.nvcc else ""))
    click.echo(f"  {result.path}\n  {result.environment_path}")
    click.echo(f"  input hash {result.input_hash[:16]}  ({stages})")


def _relock(spec: Path, cuda: str, output: Path | None, snapshot: Path | None,
            channels: tuple[str, ...], solver: str, sources: tuple[str, ...],
            fill_gaps: tuple[str, ...] = ()) -> str:
    """The same ``envbuild lock`` command without ``--check`` (every option kept)."""
    import shlex

    from builder.util.redact import redact

    args = ["envbuild", "lock", str(spec), "--cuda", cuda]
    if output is not None:
        args += ["-o", str(output)]
    if snapshot is not None:
        args += ["--channel-snapshot", str(snapshot)]
    for channel in channels:
        args += ["--channel", redact(channel)]
    if solver != "rattler":
        args += ["--solver", solver]
    for source in sources:
        args += ["--source", source]
    for kind in dict.fromkeys(fill_gaps):
        args += ["--fill-gaps", kind]
    return shlex.join(args)


def _short(req: object, path: Path) -> str:
    from builder.lock.lockfile import envbuild_metadata, read_lockfile

    return str(envbuild_metadata(read_lockfile(path), path).input_hash[:16])
