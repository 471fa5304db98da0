"""``envbuild install``, ``envbuild env`` and ``envbuild rollback``: parse, call, print."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


def show_lock_warnings(lockfile: Path) -> None:
    """Print the lockfile's recorded warnings on stderr, before any work starts."""
    from builder.cli import color
    from builder.lock.notices import lockfile_warnings

    warnings = lockfile_warnings(lockfile)
    if warnings:
        click.echo(f"{lockfile} records {len(warnings)} warning(s) from when it was locked:",
                   err=True)
    for warning in warnings:
        click.secho("warning: ", fg="yellow", err=True, nl=False, color=color())
        click.echo(warning, err=True)


def _err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@click.command()
@click.argument("lockfile", type=click.Path(path_type=Path))
@click.option("--prefix", type=click.Path(path_type=Path), default=None,
              help="environment directory (default: .envbuild/envs/<lockfile name>)")
@click.option("--force", is_flag=True, help="build a new generation even when up to date")
@click.option("--channel", "channels", multiple=True, metavar="NAME=URL",
              help="download channel NAME's packages from a mirror (repeatable; hashes are "
                   "checked as always). ENVBUILD_CHANNEL_ALIAS=URL mirrors every channel")
@click.option("--offline", is_flag=True,
              help="use only the package cache; name every package it lacks")
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object")
def install(lockfile: Path, prefix: Path | None, force: bool, channels: tuple[str, ...],
            offline: bool, as_json: bool) -> None:
    """Install LOCKFILE (conda-lock format) into a prefix: hash-checked, atomic."""
    from builder.install import InstallRequest
    from builder.install import install as do_install

    if prefix is None:
        stem = lockfile.name.split(".conda-lock")[0].split(".")[0]
        prefix = Path(".envbuild") / "envs" / stem
    show_lock_warnings(lockfile)
    result = do_install(InstallRequest(lockfile=lockfile, prefix=prefix, force=force,
                                       channels=channels, offline=offline,
                                       progress=sys.stderr.isatty()))
    if as_json:
        from builder.cli import echo_json

        echo_json(result.model_dump(mode="json"))
        return
    if result.action == "up to date":
        click.echo(f"{result.prefix} is up to date (generation {result.generation})")
        return
    steps = ", ".join(f"{name} {secs:.2f}s" for name, secs in result.steps)
    click.echo(f"installed {result.conda_packages} conda + {result.pip_packages} pip packages "
               f"into {result.prefix} (generation {result.generation}; {steps})")
    click.echo(f"activate: conda activate {result.prefix}   or   . {result.prefix}/activate")


@click.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--cuda", default=None, help="target CUDA X.Y (default: the spec's default)")
@click.option("--prefix", type=click.Path(path_type=Path), default=None,
              help="environment directory (default: <project>/.envbuild/envs/<name>-cuXY)")
@click.option("--lockfile", type=click.Path(path_type=Path), default=None,
              help="lockfile to use, or to write when missing "
                   "(default: lockfiles/<name>-cuXY.conda-lock.yml)")
@click.option("--channel", "channels", multiple=True, metavar="URL|NAME=URL",
              help="mirror (repeatable), as for lock: NAME=URL replaces one channel for the "
                   "lock (when the lockfile is missing) and the install; bare URLs replace "
                   "the channel list for the lock")
@click.option("--offline", is_flag=True,
              help="install from the package cache only; name every package it lacks")
@click.option("--source", "sources", multiple=True, metavar="NAME=PATH",
              help="a local copy of a pinned source (a git clone, bare or not, or a plain "
                   "directory of the locked commit; repeatable); verified against the lock")
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object")
def env(spec: Path, cuda: str | None, prefix: Path | None, lockfile: Path | None,
        channels: tuple[str, ...], offline: bool, sources: tuple[str, ...],
        as_json: bool) -> None:
    """Resolve, lock (if missing), install, build ops and run sanity checks."""
    from builder.env.pipeline import env_lockfile, run_env
    from builder.env.stages import EnvRequest

    existing = env_lockfile(spec, cuda, lockfile)
    if existing is not None:
        show_lock_warnings(existing)
    result = run_env(EnvRequest(spec=spec, cuda=cuda, prefix=prefix, lockfile=lockfile,
                                channels=channels, offline=offline, sources=sources,
                                progress=sys.stderr.isatty()))
    if as_json:
        from builder.cli import echo_json

        echo_json({**result.model_dump(mode="json"), "ok": result.ok})
    else:
        print_summary(result)
    if not result.ok:
        from builder.errors import CheckFailed

        missing = [s.stage for s in result.stages if s.action == "missing"]
        raise CheckFailed(f"stage(s) not available in this installation: {', '.join(missing)}",
                          hint="the environment is installed, but it has not been fully checked")


def print_summary(result: Any) -> None:
    """The final table: stage, action, seconds, detail."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"envbuild env → {result.prefix}")
    for col in ("stage", "action", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    colors = {"done": "green", "up to date": "cyan", "skipped": "dim", "missing": "red"}
    for row in result.stages:
        table.add_row(row.stage, f"[{colors[row.action]}]{row.action}[/]",
                      f"{row.seconds:.2f}", row.detail)
    Console().print(table)


@click.command()
@click.option("--prefix", type=click.Path(path_type=Path), required=True,
              help="the environment to roll back")
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object")
def rollback(prefix: Path, as_json: bool) -> None:
    """Make the previous generation of PREFIX current again."""
    from builder.install import rollback as do_rollback

    result = do_rollback(prefix)
    if as_json:
        from builder.cli import echo_json

        echo_json(result.model_dump(mode="json"))
        return
    click.echo(f"{result.prefix}: generation {result.from_generation} -> "
               f"{result.to_generation}")
