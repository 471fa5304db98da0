"""envbuild's own metadata in a lockfile is untrusted: a bad field is named at ``path:line``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from builder.errors import SpecError, UsageError
from builder.lock.lockfile import envbuild_metadata, read_lockfile
from builder.opbuild.plan import locked_pins
from tests.helpers import REPO

COMMITTED = REPO / "lockfiles" / "mask2former-cu117.conda-lock.yml"


def _tampered(tmp_path: Path) -> tuple[Path, int]:
    """A copy of the committed lockfile whose first pinned source digest is a path."""
    text = COMMITTED.read_text()
    lines = text.splitlines(keepends=True)
    line = next(i for i, s in enumerate(lines, 1) if "envbuild.sources:" in s)
    bad = re.sub(r'"sha256":"[0-9a-f]{64}"', '"sha256":"../../etc"', lines[line - 1], count=1)
    assert bad != lines[line - 1]
    lines[line - 1] = bad
    path = tmp_path / "with space" / "x.conda-lock.yml"
    path.parent.mkdir()
    path.write_text("".join(lines))
    return path, line


def test_a_bad_source_pin_is_reported_at_its_line(tmp_path: Path) -> None:
    path, line = _tampered(tmp_path)
    with pytest.raises(SpecError) as err:
        locked_pins(path)
    assert err.value.location == f"{path}:{line}"
    assert "sha256 must be 64 hex digits, not '../../etc'" in err.value.message
    assert err.value.exit_code == 2


def test_without_a_path_the_error_is_still_a_usage_error(tmp_path: Path) -> None:
    path, _ = _tampered(tmp_path)
    with pytest.raises(UsageError) as err:
        envbuild_metadata(read_lockfile(path))
    assert not isinstance(err.value, SpecError) and err.value.exit_code == 2


def test_the_committed_lockfile_pins_every_op_source() -> None:
    assert set(locked_pins(COMMITTED)) == {"cityscapesscripts", "detectron2", "mask2former",
                                           "panopticapi"}
