"""Scriptable output: ``--json`` everywhere (errors too), NO_COLOR, -q / -v."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from builder.cli import _report
from tests.helpers import run_cli


def _json(out: str) -> dict[str, object]:
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("args", [
    ("resolve", "{missing}", "--json"),
    ("lock", "{missing}", "--json"),
    ("env", "{missing}", "--json"),
    ("install", "{missing}", "--json"),
    ("doctor", "{missing}", "--json"),
    ("build", "envspecs/demo.yaml", "--prefix", "{missing}", "--json", "--arch", ""),
    ("matrix", "--torch", "9.9", "--json"),
    ("resolv", "--json"),
])
def test_errors_are_one_json_object_on_stdout(args: tuple[str, ...], tmp_path: Path) -> None:
    argv = [a.replace("{missing}", str(tmp_path / "nope.yaml")) for a in args]
    out = run_cli(*argv)
    assert out.returncode == 2, (out.stdout, out.stderr)
    data = _json(out.stdout)
    assert set(data) == {"error", "hint", "exit_code"}
    assert data["exit_code"] == 2
    assert isinstance(data["error"], str) and data["error"]
    assert "Traceback" not in out.stderr


def test_conflict_json_has_exit_code_1() -> None:
    out = run_cli("resolve", "envspecs/mask2former.yaml", "--cuda", "11.7", "--driver", "400",
                  "--json")
    assert out.returncode == 1
    data = _json(out.stdout)
    assert data["exit_code"] == 1 and "driver" in str(data["error"])
    assert data["hint"]


def test_resolve_json_success_keys_are_kept() -> None:
    out = run_cli("resolve", "envspecs/mask2former.yaml", "--cuda", "11.7", "--json")
    assert out.returncode == 0, out.stderr
    data = _json(out.stdout)
    for key in ("python", "torch", "torchvision", "cuda", "arch_list", "host_compiler", "conda",
                "pip", "warnings"):
        assert key in data
    assert "error" not in data


def test_matrix_json_rows() -> None:
    out = run_cli("matrix", "--cuda", "11.7", "--json")
    assert out.returncode == 0, out.stderr
    data = _json(out.stdout)
    assert [row["cuda"] for row in data["cuda"]] == ["11.7"]  # type: ignore[index]
    assert any(row["torch"] == "1.13.1" for row in data["torch"])  # type: ignore[index]
    gpu = _json(run_cli("matrix", "--gpu", "NVIDIA GeForce RTX 4090", "--json").stdout)["gpu"]
    assert gpu["cc"] == "8.9"  # type: ignore[index]


def test_no_color_applies_to_error_and_hint(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # a terminal: click keeps colour unless told color=False
    monkeypatch.setattr(click.utils, "should_strip_ansi",
                        lambda stream=None, color=None: color is False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    _report("boom", "do this", 2, False)
    assert "\x1b[" in capsys.readouterr().err  # coloured on a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    _report("boom", "do this", 2, False)
    err = capsys.readouterr().err
    assert "\x1b[" not in err
    assert "error: boom" in err and "hint: do this" in err


def test_verbose_echoes_commands_and_quiet_is_accepted() -> None:
    loud = run_cli("-v", "doctor")
    assert loud.returncode == 0, loud.stderr
    assert "\n$ " in "\n" + loud.stderr  # the probes' commands, quoted
    quiet = run_cli("-q", "doctor")
    assert quiet.returncode == 0
    assert "$ " not in quiet.stderr
