"""Bad envspecs -> ``path:line: what is wrong``, exit 2, never a traceback (real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import ENVSPECS, run_cli

GOOD = """\
name: t
python: "3.8"
torch: ">=1.9,<2.5"
cuda: {default: "11.7", allowed: ["11.1", "11.7"]}
sources:
  d2: {git: "https://github.com/facebookresearch/detectron2", rev: "70f45430"}
ops:
  - {name: detectron2, source: d2}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _bad(path: Path, *args: str) -> str:
    proc = run_cli("resolve", str(path), *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_good_spec_resolves(tmp_path: Path) -> None:
    proc = run_cli("resolve", str(_write(tmp_path, GOOD)), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["torch"] == "2.0.1"  # pytorch channel has 2.0.x cu117


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        # malformed YAML: an unclosed flow sequence on line 4
        (GOOD.replace('allowed: ["11.1", "11.7"]}', 'allowed: ["11.1", "11.7"}'), 4,
         "malformed YAML"),
        # unknown key, with the allowed keys named
        (GOOD + "colour: blue\n", 9, "unknown key 'colour'"),
        # wrong type: a mapping where a list belongs
        (GOOD.replace("ops:\n  - {name: detectron2, source: d2}\n", "ops: {name: x}\n"), 7,
         "ops"),
        # unquoted 3.10 is the float 3.1
        (GOOD.replace('python: "3.8"', "python: 3.10"), 2, "quotes"),
        # an op naming a source that does not exist
        (GOOD.replace("source: d2}", "source: nope}"), 8, "'nope'"),
        # torch range no release matches
        (GOOD.replace('">=1.9,<2.5"', '">=9.0"'), 3, "no torch release"),
    ],
    ids=["malformed-yaml", "unknown-key", "wrong-type", "unquoted-version",
         "unknown-op-source", "unknown-torch"],
)
def test_bad_spec_points_at_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = _write(tmp_path, text)
    err = _bad(path)
    assert f"{path}:{line}:" in err
    assert needle in err


def test_cuda_not_in_allowed_points_at_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    err = _bad(path, "--cuda", "12.1")
    assert f"{path}:4:" in err
    assert "allowed: 11.1, 11.7" in err


def test_torch_override_outside_range(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    err = _bad(path, "--torch", "2.6.0")
    assert f"{path}:3:" in err and "outside" in err


def test_unknown_fixup_points_at_it(tmp_path: Path) -> None:
    text = GOOD.replace("source: d2}", "source: d2, fixups: [no-such-fixup]}")
    path = _write(tmp_path, text)
    err = _bad(path)
    assert f"{path}:8:" in err and "no-such-fixup" in err and "dispatch-scalar-type" in err


def test_missing_file_exit_2(tmp_path: Path) -> None:
    err = _bad(tmp_path / "nope.yaml")
    assert "no such file" in err


def test_shipped_specs_load() -> None:
    for name in ("mask2former.yaml", "mask2former-modern.yaml"):
        proc = run_cli("resolve", str(ENVSPECS / name), "--json")
        assert proc.returncode == 0, proc.stderr


def test_schema_command(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    proc = run_cli("schema", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(out.read_text())
    assert set(schema["required"]) == {"name", "python", "torch"}
    assert schema["additionalProperties"] is False
    stdout = run_cli("schema")
    assert json.loads(stdout.stdout) == schema
