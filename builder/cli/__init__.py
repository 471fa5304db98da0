"""The ``envbuild`` command: a lazy click group and the one error handler.

Each subcommand lives in a small module of this package and is imported only
when it runs, so ``envbuild resolve`` never pays for the solver, the installer
or torch.  Exit codes: 0 success, 1 a reported conflict or failed check,
2 bad input or usage.  Only :func:`main` turns errors into exits.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from typing import Any, NoReturn

import click

from builder.errors import EnvbuildError

# command name -> "module:attribute"; keep in sync with DESIGN.md's contract
COMMANDS: dict[str, str] = {
    "resolve": "builder.cli.resolve:resolve",
    "matrix": "builder.cli.resolve:matrix",
    "schema": "builder.cli.resolve:schema",
    "lock": "builder.cli.lock:lock",
    "install": "builder.cli.install:install",
    "env": "builder.cli.install:env",
    "rollback": "builder.cli.install:rollback",
    "build": "builder.cli.build:build",
    "sanity": "builder.cli.build:sanity",
    "doctor": "builder.cli.doctor:doctor",
    "gpus": "builder.cli.doctor:gpus",
    "run": "builder.cli.inside:run",
    "shell": "builder.cli.inside:shell",
    "export": "builder.cli.export:export",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        cmd = getattr(module, attr)
        assert isinstance(cmd, click.Command)
        return cmd

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0])
        if name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=2)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            raise click.UsageError(f"No such command {name!r}. {hint}"
                                   f"Commands: {', '.join(sorted(COMMANDS))}", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="envbuild", prog_name="envbuild")
@click.option("-q", "--quiet", is_flag=True,
              help="Only results, warnings and errors: no progress lines.")
@click.option("-v", "--verbose", is_flag=True,
              help="Also echo every external command envbuild runs (uv, nvcc, pip, python).")
def cli(quiet: bool, verbose: bool) -> None:
    """Hash-pinned conda environments for CUDA deep-learning projects.

    \b
    resolve  spec -> exact pins, toolchain, GPU arch list (or an explained conflict)
    lock     spec -> lockfiles/NAME-cuXY.conda-lock.yml
    install  lockfile -> conda prefix
    build    compile the spec's CUDA ops into a prefix
    sanity   kernel checks against reference implementations
    env      all of the above, each stage skipped when up to date
    doctor   what this machine can run and build
    run      a command inside an env (activated), on chosen GPUs
    shell    an interactive shell inside an env
    export   a lockfile as pixi.lock, requirements.txt, explicit or environment.yml

    Every command takes --json: one JSON object on stdout, errors included
    ({"error", "hint", "exit_code"}).  NO_COLOR=1 turns colour off.
    """
    # read by the progress lines and the subprocess wrapper, in this process and in
    # the envbuild processes it starts
    if quiet:
        os.environ["ENVBUILD_QUIET"] = "1"
    if verbose:
        os.environ["ENVBUILD_VERBOSE"] = "1"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning errors into the contract's exit codes.

    With ``--json`` anywhere before ``--`` an error is also printed on stdout as one
    object, ``{"error", "hint", "exit_code"}``, so scripts always get JSON.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in (args[:args.index("--")] if "--" in args else args)
    try:
        rv = cli.main(args=args, prog_name="envbuild", standalone_mode=False)
    except EnvbuildError as exc:
        _report(exc.message, exc.hint, exc.exit_code, as_json)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _report("aborted", None, 130, as_json)
        sys.exit(130)
    except click.ClickException as exc:
        code = 2 if isinstance(exc, click.UsageError) else 1
        if as_json:
            _report(exc.format_message(), None, code, as_json)
        else:
            exc.show()
        sys.exit(code)
    except KeyboardInterrupt:
        _report("interrupted", None, 130, as_json)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        from builder.util.redact import redact

        path = _crash_report(exc)
        _report(f"envbuild: internal error: {type(exc).__name__}: {redact(str(exc))}",
                f"a crash report was written to {path}; please attach it to a bug report",
                1, as_json, plain=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


def run() -> NoReturn:
    """The ``envbuild`` program: :func:`main`, then end the process without finalizing.

    Why ``os._exit``: rattler answers a failed repodata request as soon as the first one
    fails, while its other requests are still in flight on tokio worker threads that the
    Python side cannot join.  When one of them finishes during interpreter finalization it
    takes the GIL of a dying interpreter: ``Fatal Python error: PyGILState_Release`` (exit
    134) or a segfault (139), in about half of offline runs, after the right message was
    printed.  A command has nothing left to do once :func:`main` returns (files are written
    and closed by then, temp dirs removed by their ``with`` blocks), so the output streams
    and logging are flushed and the process ends with the contract's exit code; the
    finalization in which the race happens never runs.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    _flush_and_exit(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _flush_and_exit(code: int) -> NoReturn:
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # stdout closed early (a pipe): nothing more to say
    os._exit(code)


def color() -> bool | None:
    """False when NO_COLOR is set (https://no-color.org), else click's own TTY detection."""
    return False if os.environ.get("NO_COLOR") else None


def _report(message: str, hint: str | None, code: int, as_json: bool, *,
            plain: bool = False) -> None:
    if as_json:
        echo_json({"error": message, "hint": hint, "exit_code": code})
    if plain:
        click.echo(message, err=True)
        if hint:
            click.echo(hint, err=True)
        return
    click.secho("error: ", fg="red", bold=True, err=True, nl=False, color=color())
    click.echo(message, err=True)
    if hint:
        click.secho("hint: ", fg="yellow", err=True, nl=False, color=color())
        click.echo(hint, err=True)


def _crash_report(exc: BaseException) -> str:
    """Write argv and the traceback to a crash file (credentials redacted); return its path."""
    from builder import paths
    from builder.util.redact import redact

    # argv and exception messages carry channel / index URLs, which may hold credentials
    text = redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    argv = [redact(arg) for arg in sys.argv]
    try:
        root = paths.crash_dir()
        root.mkdir(parents=True, exist_ok=True)
        import tempfile

        # a new file each time (O_EXCL): two crashes in one second never overwrite each other
        with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=root, delete=False, suffix=".txt",
                prefix=f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-") as out:
            out.write(f"argv: {argv!r}\n\n{text}")
        return out.name
    except OSError:
        return "(could not write a crash report: " + text.splitlines()[-1] + ")"


def echo_json(data: Any) -> None:
    """Print one JSON object (sorted keys, stable) on stdout."""
    import json

    click.echo(json.dumps(data, indent=2, sort_keys=True))
