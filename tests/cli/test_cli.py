"""The CLI's one error handler: contract exit codes, hints, crash reports instead of tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli import COMMANDS, main
from tests.helpers import ENVSPECS, REPO, run_cli


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


# an unexpected exception deep inside a command, carrying a credential in its message
_SECRET_URL = "https://alice:s3cret@mirror.example/conda"
_BOOM = f"reading {_SECRET_URL} went wrong"
_SHOWN = "reading https://mirror.example/conda went wrong"  # what redaction leaves


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError(_BOOM)


def _crash_lines(err: str, home: Path) -> Path:
    """The two lines the contract prints for an internal error; the report they name."""
    assert "Traceback" not in err and "s3cret" not in err, err
    message, hint = err.splitlines()
    assert message == f"envbuild: internal error: RuntimeError: {_SHOWN}"
    prefix, suffix = "a crash report was written to ", "; please attach it to a bug report"
    assert hint.startswith(prefix) and hint.endswith(suffix), hint
    report = Path(hint[len(prefix):-len(suffix)])
    assert report.parent == home / "crash" and report.name.startswith("crash-")
    assert [p.name for p in report.parent.iterdir()] == [report.name]
    return report


def test_internal_error_writes_a_crash_report_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import builder.spec.envspec

    home = tmp_path / "eh"
    monkeypatch.setenv("ENVBUILD_HOME", str(home))
    monkeypatch.setattr(builder.spec.envspec, "load_spec", _boom)
    spec = tmp_path / "demo.yaml"
    shutil.copy(ENVSPECS / "demo.yaml", spec)
    argv = ["resolve", str(spec), "--driver", _SECRET_URL]
    monkeypatch.setattr(sys, "argv", ["envbuild", *argv])
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 1
    out, err = capsys.readouterr()
    assert out == ""
    text = _crash_lines(err, home).read_text()
    assert text.startswith("argv: ") and str(spec) in text.splitlines()[0]
    assert "Traceback (most recent call last):" in text and "in _boom" in text
    assert text.rstrip().endswith(f"RuntimeError: {_SHOWN}")
    assert "s3cret" not in text

    with pytest.raises(SystemExit) as info:
        main([*argv, "--json"])
    assert info.value.code == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["exit_code"] == 1
    assert data["error"] == f"envbuild: internal error: RuntimeError: {_SHOWN}"
    assert data["hint"].startswith("a crash report was written to ")


def test_internal_error_in_a_real_process_exits_1_with_the_report(tmp_path: Path) -> None:
    """The installed entry point (``builder.cli:run``, which ends with ``os._exit``) in its
    own process, with the failure injected before the command runs."""
    home = tmp_path / "eh"
    spec = tmp_path / "demo.yaml"
    shutil.copy(ENVSPECS / "demo.yaml", spec)
    code = ("import sys, builder.spec.envspec as envspec\n"
            f"def _boom(*a, **k): raise RuntimeError({_BOOM!r})\n"
            "envspec.load_spec = _boom\n"
            "sys.argv = ['envbuild', *sys.argv[1:]]\n"
            "from builder.cli import run\n"
            "run()\n")
    out = subprocess.run([sys.executable, "-c", code, "resolve", str(spec)], capture_output=True,
                         text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "ENVBUILD_HOME": str(home)})
    assert out.returncode == 1, out.stderr
    assert out.stdout == ""
    text = _crash_lines(out.stderr, home).read_text()
    assert "Traceback (most recent call last):" in text and "in _boom" in text
    assert "'resolve', " in text.splitlines()[0]


def test_a_directory_given_as_the_spec_is_a_usage_error(tmp_path: Path) -> None:
    out = run_cli("resolve", str(tmp_path), env={"ENVBUILD_HOME": str(tmp_path / "eh")})
    assert out.returncode == 2, out.stderr
    assert "is a directory" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "eh" / "crash").exists()


def test_two_crashes_in_one_second_keep_both_reports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from builder.cli import _crash_report

    monkeypatch.setenv("ENVBUILD_HOME", str(tmp_path / "eh"))
    monkeypatch.setattr(time, "strftime", lambda fmt: "20261201-120000")
    first = _crash_report(RuntimeError("one"))
    second = _crash_report(RuntimeError("two"))
    assert first != second
    assert Path(first).read_text().rstrip().endswith("RuntimeError: one")
    assert Path(second).read_text().rstrip().endswith("RuntimeError: two")
