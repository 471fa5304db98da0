"""``envbuild export``: parse, call :func:`builder.lock.export.export`, write or print."""

from __future__ import annotations

from pathlib import Path

import click

_FORMATS = ("pixi", "requirements", "explicit", "environment-yml")


@click.command("export")
@click.argument("lockfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(_FORMATS),
              help="pixi (pixi.lock), requirements (pip, hash-pinned), explicit (conda "
                   "@EXPLICIT), environment-yml (conda env create)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write to this file (default: stdout)")
@click.option("--json", "as_json", is_flag=True,
              help="print {format, path, text, conda_packages, pip_packages} as JSON")
def export(lockfile: Path, fmt: str, output: Path | None, as_json: bool) -> None:
    """Write LOCKFILE in another tool's format, from its exact URLs and hashes."""
    from builder.lock.export import export as do_export

    result = do_export(lockfile, fmt)
    if output is not None:
        from builder.util.fs import atomic_write_text

        atomic_write_text(output, result.text)
    if as_json:
        from builder.cli import echo_json

        echo_json({"format": result.format, "path": str(output) if output else None,
                   "text": None if output else result.text,
                   "conda_packages": result.conda_packages,
                   "pip_packages": result.pip_packages})
    elif output is None:
        click.echo(result.text, nl=False)
    else:
        click.echo(f"wrote {output} ({result.format}: {result.conda_packages} conda + "
                   f"{result.pip_packages} pip packages)", err=True)
