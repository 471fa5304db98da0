"""``envbuild doctor`` and ``envbuild gpus``: thin click commands."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from builder.cli import color, echo_json

_COLORS = {"OK": "green", "WARN": "yellow", "FAIL": "red"}


@click.command()
@click.argument("spec", required=False, type=click.Path(path_type=Path))
@click.option("--cuda", metavar="X.Y", help="CUDA version to check the spec for.")
@click.option("--prefix", type=click.Path(path_type=Path),
              help="Environment whose torch to check (default: $CONDA_PREFIX).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def doctor(spec: Path | None, cuda: str | None, prefix: Path | None, as_json: bool) -> int:
    """What this machine can run and build (and, with SPEC, whether it fits SPEC).

    \b
    Exit status: 0 for a machine report (also without GPU or driver);
    with SPEC, 1 when any finding is FAIL.
    """
    from builder.doctor.report import DoctorRequest, run_doctor

    report = run_doctor(DoctorRequest(spec=spec, cuda=cuda, prefix=prefix))
    if as_json:
        echo_json(report.to_json())
    else:
        _print_report(report)
    return 1 if report.failed else 0


def _print_report(report: object) -> None:
    from builder.doctor.report import DoctorReport

    assert isinstance(report, DoctorReport)
    drv = report.host.driver
    if drv.has_driver and report.support:
        click.echo(f"driver {drv.driver_version}: can run")
        for line in report.support.lines:
            click.echo(f"  - {line}")
    host = report.host
    click.echo(f"glibc {host.glibc or '?'}; gcc {host.gcc.version or 'not found'}; "
               f"g++ {host.gxx.version or 'not found'}")
    _print_findings(report.findings)
    if report.spec is not None:
        click.echo(f"\n{report.spec} on this machine:")
        _print_findings(report.spec_findings)
        verdict = "FAIL" if report.failed else (
            "OK" if report.resolution is not None else "not decided (see above)")
        click.echo(f"verdict for {report.spec}: {verdict}")


def _print_findings(findings: Sequence[object]) -> None:
    from builder.doctor.checks import Finding

    for f in findings:
        assert isinstance(f, Finding)
        tag = click.style(f"{f.level:<4}", fg=_COLORS[f.level], bold=f.level != "OK")
        click.echo(f"{tag} {f.topic:<10} {f.message}", color=color())
        if f.fix:
            click.echo(f"{'':4} {'':<10} fix: {f.fix}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def gpus(as_json: bool) -> None:
    """List this machine's GPUs with full names (never truncated)."""
    from builder.host import detect_driver

    facts = detect_driver()
    if as_json:
        echo_json(facts.to_json())
        return
    if not facts.gpus:
        click.echo(f"no GPUs: {facts.problem or 'the driver lists none'}")
        return
    click.echo(f"driver {facts.driver_version} (CUDA {facts.cuda_version or '?'}) "
               f"via {facts.backend}")
    for line in gpu_table(facts.gpus):
        click.echo(line)


def gpu_table(rows: Sequence[object]) -> list[str]:
    """Aligned text table; columns grow to fit, nothing is cut."""
    from builder.host.models import GpuInfo

    header = ("GPU", "NAME", "BUS ID", "CC", "MEMORY USED/TOTAL", "UTIL", "PROCS")
    table: list[tuple[str, ...]] = [header]
    for g in rows:
        assert isinstance(g, GpuInfo)
        mem = (f"{g.memory_used_mib} / {g.memory_total_mib} MiB"
               if g.memory_total_mib is not None else "?")
        table.append((str(g.index), g.name, g.pci_bus_id, g.compute_capability or "?", mem,
                      f"{g.utilization_pct}%" if g.utilization_pct is not None else "?",
                      str(g.process_count) if g.process_count is not None else "?"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in table]
