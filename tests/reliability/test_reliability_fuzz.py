"""Fuzzed envspecs: every input either loads or fails with path:line and exit 2 — never a traceback.

Two generators: random byte/line mutations of a real-looking spec (exercising the YAML
parser's error paths) and structurally random documents built from the spec's own keys
with values of the wrong shape (exercising validation).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from builder.errors import EnvbuildError
from builder.spec.envspec import load_spec
from tests.helpers import DATA, run_cli
from tests.helpers.reliability import mutate_lines

pytestmark = pytest.mark.reliability

SEED = (DATA / "specs" / "fuzz-seed.yaml").read_text()
SEED_LINES = SEED.splitlines()
KEYS = ["name", "python", "torch", "torch_from", "cuda", "channels", "conda", "pip",
        "pip_options", "sources", "ops", "exclude_newer", "platform", "bogus"]
LOCATION = re.compile(r"^(?P<path>/[^:]+):(?P<line>\d+): ")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=False, width=32),
    st.text(max_size=12), st.sampled_from(["3.8", "11.7", ">=1.9", "conda", "pypi", "cpu"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS + ["git", "rev", "path", "default",
                                                                    "allowed", "source"]),
                                            inner, max_size=4)),
    max_leaves=10,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


def _check(path: Path, n_lines: int) -> None:
    try:
        load_spec(path)
    except EnvbuildError as exc:
        assert exc.exit_code == 2, exc.message
        match = LOCATION.match(exc.message)
        assert match, f"no path:line in {exc.message!r}"
        assert match["path"] == str(path)
        assert 1 <= int(match["line"]) <= max(n_lines, 1)


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.integers(0, len(SEED_LINES) - 1),
    op=st.sampled_from(["delete", "duplicate", "indent", "garble", "truncate", "swap"]),
    junk=st.text(alphabet=":-[]{}'\"#&*!|> \tabc123", min_size=1, max_size=6),
)
def test_mutated_specs_never_crash(tmp_path: Path, cut: int, op: str, junk: str) -> None:
    lines = mutate_lines(SEED_LINES, cut, op, junk)
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    _check(path, len(lines) + 1)


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_structurally_random_specs_never_crash(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "spec.yaml"
    yaml = YAML()
    with open(path, "w") as fh:
        yaml.dump(doc, fh)
    _check(path, len(path.read_text().splitlines()) + 1)


def test_seed_spec_itself_loads() -> None:
    loaded = load_spec(DATA / "specs" / "fuzz-seed.yaml")
    assert loaded.spec.ops[1].fixups == ("dispatch-scalar-type",)
    assert loaded.where("ops", 1, "sanity").endswith(":20")


def test_fuzzed_spec_through_the_real_cli(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(SEED.replace('torch_from: conda', 'torch_from: [conda'))
    out = run_cli("resolve", str(path))
    assert out.returncode == 2
    assert f"{path}:" in out.stderr
    assert "Traceback" not in out.stderr
