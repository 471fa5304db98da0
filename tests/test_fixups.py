"""Source fixups: the dispatch-scalar-type rewrite and the registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.build.fixups import REGISTRY, apply_fixups, dispatch_scalar_type, fixup_keys, get_fixup
from builder.errors import UsageError
from tests.helpers import DATA

BEFORE = DATA / "fixups" / "dispatch_before.cu"
AFTER = DATA / "fixups" / "dispatch_after.cu"


def test_dispatch_scalar_type_rewrites_only_the_macro_argument() -> None:
    out = dispatch_scalar_type(BEFORE.read_text())
    assert out == AFTER.read_text()
    assert "value.type().is_cuda()" in out  # outside AT_DISPATCH: still compiles, left alone
    assert "launch_other<scalar_t>(other.type())" in out  # inside the lambda, not the argument


def test_dispatch_scalar_type_is_idempotent() -> None:
    once = dispatch_scalar_type(BEFORE.read_text())
    assert dispatch_scalar_type(once) == once


@pytest.mark.parametrize("macro", ["AT_DISPATCH_FLOATING_TYPES", "AT_DISPATCH_ALL_TYPES_AND2",
                                   "AT_DISPATCH_FLOATING_TYPES_AND_HALF"])
def test_every_dispatch_macro(macro: str) -> None:
    src = f'{macro}(t->grad().type(), "k", ([&] {{ f(); }}));'
    assert dispatch_scalar_type(src) == f'{macro}(t->grad().scalar_type(), "k", ([&] {{ f(); }}));'


def test_apply_fixups_changes_the_copy_and_reports(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    shutil.copy(BEFORE, tmp_path / "src" / "k.cu")
    (tmp_path / "README.md").write_text("AT_DISPATCH_FLOATING_TYPES(x.type(), ...)\n")
    [report] = apply_fixups(tmp_path, ["dispatch-scalar-type"])
    assert report.changed == ("src/k.cu",)
    assert report.replacements == 2
    assert (tmp_path / "src" / "k.cu").read_text() == AFTER.read_text()
    assert "x.type()" in (tmp_path / "README.md").read_text()  # not a C++ source


def test_registry_lookup_and_keys() -> None:
    assert "dispatch-scalar-type" in REGISTRY
    assert fixup_keys(["dispatch-scalar-type"]) == ["dispatch-scalar-type@1"]
    with pytest.raises(UsageError, match="unknown fixup 'nope'") as err:
        get_fixup("nope")
    assert "dispatch-scalar-type" in (err.value.hint or "")
