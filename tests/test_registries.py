"""Each registry is the one list its names are checked against: the command-line choices,
the spec schema, the matrix data and the code that carries the names out."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from builder.lock.conda_layer import SOLVERS
from builder.matrix.load import load_matrix
from builder.opbuild.fixups import REGISTRY
from builder.sanity.kinds import CPU_KINDS, KINDS
from builder.spec.envspec import load_spec

SPEC = """\
name: t
python: "3.11"
torch: "==2.13.0"
torch_from: pypi
sources:
  s: {{path: .}}
ops:
  - {{name: a, source: s, {field}: {value}}}
"""


def _choices(module: str, command: str, option: str) -> set[str]:
    import importlib

    cmd = getattr(importlib.import_module(module), command)
    param = next(p for p in cmd.params if p.name == option)
    assert isinstance(param.type, click.Choice)
    return set(param.type.choices)


def test_the_sanity_kinds_are_the_cli_choices_the_spec_and_the_checks() -> None:
    from builder.sanity import run_checks  # stdlib only at import (run by the prefix's python)

    assert set(run_checks.KERNELS) == set(KINDS)
    assert set(KINDS) >= CPU_KINDS
    assert _choices("builder.cli.build", "sanity", "kinds") == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_spec_takes_every_registered_sanity_kind(tmp_path: Path, kind: str) -> None:
    (tmp_path / "t.yaml").write_text(SPEC.format(field="sanity", value=kind))
    assert load_spec(tmp_path / "t.yaml").spec.ops[0].sanity == kind


def test_the_spec_refuses_an_unregistered_sanity_kind_and_names_the_known(tmp_path: Path) -> None:
    from builder.errors import SpecError

    (tmp_path / "t.yaml").write_text(SPEC.format(field="sanity", value="nope"))
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path / "t.yaml")
    assert f"{tmp_path / 't.yaml'}:8" in str(err.value)
    assert "unknown sanity kind 'nope'" in str(err.value)
    assert all(k in str(err.value) for k in KINDS)


@pytest.mark.parametrize("field", ["fixups", "skip_fixups"])
def test_the_spec_takes_registered_fixups_and_refuses_others(tmp_path: Path, field: str) -> None:
    from builder.errors import SpecError

    name = sorted(REGISTRY)[0]
    (tmp_path / "t.yaml").write_text(SPEC.format(field=field, value=f"[{name}]"))
    assert getattr(load_spec(tmp_path / "t.yaml").spec.ops[0], field) == (name,)
    (tmp_path / "t.yaml").write_text(SPEC.format(field=field, value="[no-such]"))
    with pytest.raises(SpecError, match=r"t\.yaml:8: .*unknown fixup 'no-such'; known: "
                                        + re.escape(", ".join(sorted(REGISTRY)))):
        load_spec(tmp_path / "t.yaml")


def test_every_name_in_the_matrix_data_is_registered() -> None:
    m = load_matrix()
    rules = m.sources.fixups
    assert rules, "the matrix names no fixup rules: this test would check nothing"
    for rule in rules:
        assert rule.name in REGISTRY, f"sources.yaml names fixup {rule.name!r}, registered nowhere"
        for kind in rule.sanity:
            assert kind in KINDS, f"sources.yaml names sanity kind {kind!r}, registered nowhere"


def test_the_solver_choices_are_the_solver_registry() -> None:
    assert _choices("builder.cli.lock", "lock", "solver") == set(SOLVERS)
    assert "rattler" in SOLVERS  # the default of --solver
