"""The CLI's one error handler: contract exit codes, hints, crash reports instead of tracebacks."""

from __future__ import annotations

from pathlib import Path

from builder.cli import COMMANDS
from tests.helpers import run_cli


def test_every_contract_command_is_registered() -> None:
    contract = {"resolve", "lock", "install", "build", "sanity", "env", "doctor", "gpus", "run",
                "matrix"}
    assert contract <= set(COMMANDS)


def test_unknown_command_is_usage_error() -> None:
    out = run_cli("no-such-command")
    assert out.returncode == 2
    assert "No such command" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_lists_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ("resolve", "lock", "install", "env", "doctor"):
        assert name in out.stdout


def test_missing_spec_file_is_exit_2_with_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    out = run_cli("resolve", str(missing))
    assert out.returncode == 2, out.stderr
    assert str(missing) in out.stderr
    assert "Traceback" not in out.stderr


def test_internal_error_writes_crash_report(tmp_path: Path) -> None:
    # A spec file that is a directory makes the YAML reader fail in an unexpected way.
    home = tmp_path / "eh"
    out = run_cli("resolve", str(tmp_path), env={"ENVBUILD_HOME": str(home)})
    assert out.returncode in (1, 2)
    assert "Traceback" not in out.stderr
    if out.returncode == 1:
        reports = list((home / "crash").glob("crash-*.txt"))
        assert reports and "Traceback" in reports[0].read_text()
