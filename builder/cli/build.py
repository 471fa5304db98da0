"""``envbuild build`` and ``envbuild sanity``: parse, call one function, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from builder.errors import UsageError
from builder.sanity.kinds import KINDS

if TYPE_CHECKING:
    from builder.opbuild.reproducible import ReproCheck


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prefix", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="env to build into: any directory with bin/python (conda env or venv)")
@click.option("--cuda", default=None, help="target CUDA X.Y (default: the spec's default)")
@click.option("--arch", default=None, help='override the arch list, e.g. "8.0;8.6+PTX"')
@click.option("--source", "sources", multiple=True, metavar="NAME=PATH",
              help="use a local checkout for a source (repeatable)")
@click.option("--op", "only", multiple=True, help="build only these ops (repeatable)")
@click.option("--lockfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="take the sources' pins from this lockfile (default: the "
                                 "spec's lockfile for this CUDA, when it exists)")
@click.option("--json", "as_json", is_flag=True, help="print the results as one JSON object")
@click.option("--check-reproducible", is_flag=True,
              help="build each op a second time in a fresh dir and compare the wheels "
                   "(exit 1 when they differ)")
def build(spec: Path, prefix: Path, cuda: str | None, arch: str | None,
          sources: tuple[str, ...], only: tuple[str, ...], lockfile: Path | None,
          as_json: bool, check_reproducible: bool) -> int:
    """Compile the spec's CUDA ops (clean, out of tree, cached by content) into PREFIX."""
    from builder.opbuild.plan import BuildPlanRequest, build_spec

    arch_list = tuple(a.strip() for a in arch.split(";") if a.strip()) if arch else None
    if arch is not None and not arch_list:
        raise UsageError('--arch needs at least one arch, e.g. --arch "8.6"')
    results = build_spec(BuildPlanRequest(
        spec=spec, prefix=prefix.expanduser().absolute(), cuda=cuda, arch_list=arch_list,
        sources=sources, only=only, check_reproducible=check_reproducible, lockfile=lockfile),
        log=lambda msg: click.echo(msg, err=True))
    differ = [r.name for r in results if r.reproducible and not r.reproducible.identical]
    if as_json:
        from builder.cli import echo_json

        echo_json({"prefix": str(prefix), "ops": [r.model_dump(mode="json") for r in results]})
        return 1 if differ else 0
    for res in results:
        state = "cache hit" if res.cache_hit else "built"
        if res.rechecked:
            state = "kept build passed its checks again (not compiled)"
        click.echo(f"{res.name}: {state}{', installed' if res.installed else ', already installed'}"
                   f" (key {res.key[:16]})")
        click.echo(f"  wheel: {res.wheel}")
        for fixup in res.fixups_applied:
            click.echo(f"  fixup: {fixup.describe()}")
        if res.gpu_gate:
            click.echo(f"  gpu gate: {res.gpu_gate.describe()}")
        for step in res.steps:
            click.echo(f"  {step.name:<14} {step.seconds:8.2f}s  {step.detail}".rstrip())
        for warning in res.warnings:
            click.echo(f"  warning: {warning}", err=True)
        if res.reproducible is not None:
            click.echo("  " + _repro_line(res.reproducible))
    if differ:
        click.echo(f"not reproducible: {', '.join(differ)}", err=True)
        return 1
    return 0


def _repro_line(check: ReproCheck) -> str:
    """``reproducible: identical ...`` or the differing members, one per line."""
    if check.identical:
        return (f"reproducible: a second build gave the identical wheel "
                f"(sha256 {check.stored_sha256[:16]}, {check.seconds:.1f}s)")
    lines = [f"NOT reproducible: stored sha256 {check.stored_sha256[:16]}, second build "
             f"{check.rebuilt_sha256[:16]} ({check.seconds:.1f}s); differing files:"]
    for d in check.differing:
        lines.append(f"    {d.name}: {(d.first or 'absent')[:16]} vs {(d.second or 'absent')[:16]}")
    if not check.differing:
        lines.append("    (no member differs: only the archive itself)")
    return "\n".join(lines)


@click.command()
@click.option("--prefix", required=True, type=click.Path(exists=True, file_okay=False,
                                                         path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON only")
@click.option("--check", "kinds", multiple=True, type=click.Choice(sorted(KINDS)),
              help="checks to run (default: every op installed in the prefix, each with its "
                   "import check and its kind's kernel checks)")
def sanity(prefix: Path, as_json: bool, kinds: tuple[str, ...]) -> int:
    """Kernel checks in PREFIX against our own reference implementations."""
    from builder.sanity.report import run_sanity, table

    report = run_sanity(prefix.expanduser().absolute(), kinds)
    data = report.model_dump(mode="json")
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(table(report))
        click.echo(f"report: {prefix / '.envbuild' / 'sanity.json'} ({report.summary})")
    if report.failed:
        click.echo("sanity: FAILED", err=True)
        sys.stdout.flush()
        return 1
    return 0
