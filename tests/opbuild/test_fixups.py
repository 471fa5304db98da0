"""Source fixups: the dispatch-scalar-type rewrite and the registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.opbuild.fixups import (
    REGISTRY,
    apply_fixups,
    dispatch_scalar_type,
    fixup_keys,
    get_fixup,
    plan_fixups,
)
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


# --- automatic fixups, chosen from the source ----------------------------------------------


def _tree(tmp_path: Path, text: str) -> Path:
    (tmp_path / "csrc").mkdir()
    (tmp_path / "csrc" / "op.cpp").write_text(text)
    (tmp_path / "setup.py").write_text("AT_DISPATCH_FLOATING_TYPES(x.type(), ...)\n")
    return tmp_path


OLD_DISPATCH = 'AT_DISPATCH_FLOATING_TYPES(x.type(), "f", ([&] { g<scalar_t>(); }));\n'


def test_a_fixup_the_torch_needs_is_applied_when_the_source_has_its_pattern(
        tmp_path: Path) -> None:
    root = _tree(tmp_path, OLD_DISPATCH)
    [planned] = plan_fixups(root, "2.14.1+cu130", requested=())
    assert planned.name == "dispatch-scalar-type" and planned.automatic
    assert planned.key == "dispatch-scalar-type@1"
    assert planned.files == ("csrc/op.cpp",)  # setup.py is not a C++ source
    assert "torch 2.14.1+cu130 needs it" in planned.why
    assert "DeprecatedTypeProperties" in planned.why
    assert "automatic" in planned.describe() and "csrc/op.cpp" in planned.describe()
    assert (root / "csrc" / "op.cpp").read_text() == OLD_DISPATCH  # planning reads only


def test_no_automatic_fixup_for_an_old_torch_clean_source_or_when_skipped(tmp_path: Path) -> None:
    root = _tree(tmp_path, OLD_DISPATCH)
    assert plan_fixups(root, "2.5.1", requested=()) == ()
    assert plan_fixups(root, "2.14.1", requested=(), skipped=("dispatch-scalar-type",)) == ()
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "op.cu").write_text(dispatch_scalar_type(OLD_DISPATCH))
    assert plan_fixups(clean, "2.14.1", requested=()) == ()


def test_a_requested_fixup_is_kept_even_without_a_match_and_skip_wins(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "op.cu").write_text("int main() {}\n")
    [planned] = plan_fixups(clean, "2.5.1", requested=("dispatch-scalar-type",))
    assert not planned.automatic and planned.files == ()
    assert plan_fixups(clean, "2.14.1", requested=("dispatch-scalar-type",),
                       skipped=("dispatch-scalar-type",)) == ()
    with pytest.raises(UsageError, match="unknown fixup 'nope'"):
        plan_fixups(clean, "2.14.1", requested=(), skipped=("nope",))


def test_the_fixture_trees_are_planned_as_a_build_would() -> None:
    for tree, where in (("gated", "src/vision.cpp"), ("wholepkg", "wholepkg/csrc/vision.cpp")):
        [planned] = plan_fixups(DATA / "ops" / tree, "2.14.1", requested=())
        assert planned.automatic and planned.files == (where,), tree
    assert plan_fixups(DATA / "ops" / "msda", "2.14.1", requested=()) == ()


def test_the_build_plan_passes_the_ops_skip_fixups(tmp_path: Path) -> None:
    from builder.opbuild.plan import skip_fixups
    from builder.spec.envspec import load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text('name: t\npython: "3.11"\ntorch: "2.14.1"\ntorch_from: pypi\n'
                    "sources: {s: {path: .}}\n"
                    "ops:\n  - {name: a, source: s, skip_fixups: [dispatch-scalar-type]}\n"
                    "  - {name: b, source: s}\n")
    loaded = load_spec(spec)
    assert skip_fixups(loaded.spec, "a") == ("dispatch-scalar-type",)
    assert skip_fixups(loaded.spec, "b") == ()
