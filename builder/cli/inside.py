"""``envbuild run`` and ``envbuild shell``: a command (or a shell) inside an env, on chosen GPUs.

``--prefix`` activates the env the way ``conda activate`` would (its
``etc/conda/activate.d`` scripts: PATH, CONDA_PREFIX, CUDA_HOME, CUDA_DEVICE_ORDER, and
its packages' own variables); ``--gpus`` sets CUDA_VISIBLE_DEVICES.  Both then replace
this process with the command, so its exit status is the command's.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

_PREFIX_HELP = "Environment to run in, activated (default: none, the current environment)."


@click.command(context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False})
@click.option("--prefix", type=click.Path(path_type=Path), default=None, help=_PREFIX_HELP)
@click.option("--gpus", "selection", default="auto", show_default=True,
              metavar="auto|all|0,2", help="GPUs by nvidia-smi index; auto = least loaded.")
@click.option("--json", "as_json", is_flag=True,
              help="the GPU plan as one JSON object on stderr (stdout is the command's)")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(prefix: Path | None, selection: str, as_json: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND in an env, on chosen GPUs: envbuild run --prefix P --gpus auto -- CMD ...

    Sets CUDA_DEVICE_ORDER=PCI_BUS_ID (so indices match nvidia-smi) and
    CUDA_VISIBLE_DEVICES, prints which physical GPU becomes cuda:0, cuda:1, ...,
    then replaces itself with COMMAND.  With --prefix the env is activated first.
    """
    _exec(prefix, selection, command, as_json=as_json)


@click.command()
@click.option("--prefix", type=click.Path(path_type=Path), required=True,
              help="Environment to open a shell in, activated.")
@click.option("--gpus", "selection", default="auto", show_default=True,
              metavar="auto|all|0,2", help="GPUs by nvidia-smi index; auto = least loaded.")
@click.option("--json", "as_json", is_flag=True,
              help="the GPU plan as one JSON object on stderr")
def shell(prefix: Path, selection: str, as_json: bool) -> None:
    """Open an interactive shell ($SHELL, else bash) inside the activated env; exit leaves it."""
    login = os.environ.get("SHELL") or "bash"
    _exec(prefix, selection, (login, "-i"), shell_of=prefix, as_json=as_json)


def _exec(prefix: Path | None, selection: str, command: tuple[str, ...],
          shell_of: Path | None = None, as_json: bool = False) -> None:
    from builder.errors import UsageError
    from builder.host import detect_driver
    from builder.host.gpu_select import describe, plan_run

    environ = dict(os.environ)
    if prefix is not None:
        from builder.install.activation import activated_environ

        environ = activated_environ(prefix, environ)
    if shell_of is not None:
        environ["ENVBUILD_SHELL"] = str(shell_of)
        click.echo(f"envbuild shell: {shell_of} is active; `exit` leaves it", err=True)
    plan = plan_run(command, selection, detect_driver(), environ)
    if as_json:
        import json

        click.echo(json.dumps({
            "argv": list(plan.argv), "prefix": str(prefix) if prefix else None,
            "cuda_visible_devices": plan.env.get("CUDA_VISIBLE_DEVICES"),
            "cuda_device_order": plan.env.get("CUDA_DEVICE_ORDER"),
            "gpus": [{"index": a.gpu.index, "name": a.gpu.name, "visible_as": a.visible_index}
                     for a in plan.assignments], "note": plan.note}, sort_keys=True), err=True)
    elif not os.environ.get("ENVBUILD_QUIET"):
        for line in describe(plan):
            click.echo(line, err=True)
    try:
        os.execvpe(plan.argv[0], list(plan.argv), plan.env)
    except OSError as exc:
        where = f" in {prefix}" if prefix is not None else ""
        raise UsageError(f"cannot run {plan.argv[0]!r}{where}: {exc.strerror}",
                         hint="check the command name and PATH") from None
