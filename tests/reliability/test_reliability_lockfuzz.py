"""Fuzzed lockfiles: ``read_lockfile`` and everything ``envbuild install`` does before it
touches a prefix (``load_plan``) raise nothing but :class:`EnvbuildError`, with exit 2
(or 1) and the file's path; YAML errors and wrong fields carry ``path:line``.

Two generators, as for specs in tests/reliability/test_reliability_fuzz.py: line mutations of real
lockfiles (one written from the local channel, one cut from the committed
``lockfiles/mask2former-cu117.conda-lock.yml``), and structurally random documents built
from the lockfile's own keys with values of the wrong shape.  A handful of mutants go
through the real CLI as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.errors import EnvbuildError
from builder.install.plan import load_plan
from tests.helpers import REPO
from tests.helpers.reliability import mutate_lines, record, run_to_end

pytestmark = pytest.mark.reliability

EXAMPLES = 1000  # per generator; derandomize=True: the same examples every run
LOCATION = re.compile(r"^(?P<path>/[^:]+):(?P<line>\d+): ")
OPS = ["delete", "duplicate", "indent", "dedent", "garble", "truncate", "swap", "retype"]
JUNK = st.text(alphabet=":-[]{}'\"#&*!|>%@ \tab9/.", min_size=1, max_size=6)
KEYS = ["version", "metadata", "package", "content_hash", "channels", "platforms", "sources",
        "custom_metadata", "name", "manager", "platform", "dependencies", "url", "hash",
        "md5", "sha256", "build", "optional", "category", "categories", "bogus"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=False, width=32),
    st.text(max_size=12),
    st.sampled_from(["linux-64", "conda", "pip", "1", "file:///x/y/z.conda", "ab" * 32, ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=12,
)
documents = st.fixed_dictionaries(
    {}, optional={"version": st.one_of(st.just(1), values),
                  "metadata": st.one_of(values, st.fixed_dictionaries(
                      {}, optional={k: values for k in ("content_hash", "channels", "platforms",
                                                        "sources", "custom_metadata")})),
                  "package": st.one_of(values, st.lists(st.dictionaries(
                      st.sampled_from(KEYS), values, max_size=9), max_size=3)),
                  "bogus": values})

_seen: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    """After the module: record what the generators produced (figures for RELIABILITY.md)."""
    yield
    if _seen:
        record("fuzzed lockfiles (in process: read_lockfile + load_plan)",
               examples=sum(_seen.values()), outcomes=dict(_seen))


def _committed_cut() -> str:
    """The committed lockfile's header, metadata and first six packages (valid YAML)."""
    text = (REPO / "lockfiles" / "mask2former-cu117.conda-lock.yml").read_text()
    starts = [m.start() for m in re.finditer(r"^- name: ", text, flags=re.M)]
    return text[:starts[6]]


@pytest.fixture(scope="module")
def seeds(local: LocalChannel, tmp_path_factory: pytest.TempPathFactory
          ) -> list[list[str]]:
    lockfile = write_channel_lockfile(local, tmp_path_factory.mktemp("seed") / "l.yml")
    return [lockfile.read_text().splitlines(), _committed_cut().splitlines()]


def _problem_kind(path: Path) -> str:
    """What is wrong with the file, judged independently of envbuild: yaml / schema / ok
    (ok: conda-lock reads it; then only envbuild's own plan can reject it)."""
    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return "yaml"
    except UnicodeDecodeError:
        return "yaml"
    from conda_lock.lockfile import parse_conda_lock_file

    try:
        parse_conda_lock_file(path)
    except Exception:  # noqa: BLE001 - any rejection by conda-lock's own reader
        return "schema"
    return "ok"


def _check(path: Path, n_lines: int) -> None:
    try:
        load_plan(path, platform="linux-64")
    except EnvbuildError as exc:
        assert exc.exit_code in (1, 2), exc.message
        assert str(path) in exc.message, f"no path in {exc.message!r}"
        kind = _problem_kind(path)
        kind = "plan" if kind == "ok" else kind
        _seen[kind] = _seen.get(kind, 0) + 1
        if kind in ("yaml", "schema", "plan"):  # plan: the record (or field) at fault
            match = LOCATION.match(exc.message)
            assert match, f"{kind} error without path:line: {exc.message!r}"
            assert match["path"] == str(path)
            assert 1 <= int(match["line"]) <= max(n_lines, 1)
    else:
        _seen["accepted"] = _seen.get("accepted", 0) + 1


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 1), cut=st.integers(0, 10**6), op=st.sampled_from(OPS),
       junk=JUNK)
def test_mutated_lockfiles_never_crash(seeds: list[list[str]], tmp_path: Path, which: int,
                                       cut: int, op: str, junk: str) -> None:
    lines = mutate_lines(seeds[which], cut, op, junk)
    path = tmp_path / "fuzzed.conda-lock.yml"
    path.write_text("\n".join(lines) + "\n")
    _check(path, len(lines) + 1)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_structurally_random_lockfiles_never_crash(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "random.conda-lock.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    _check(path, len(path.read_text().splitlines()) + 1)


CLI_MUTANTS = {
    "yaml: unclosed flow list": lambda t: t.replace("platforms:\n  - linux-64",
                                                    "platforms: [linux-64", 1),
    "yaml: tab indentation": lambda t: t.replace("\n  platforms:", "\n\tplatforms:", 1),
    "schema: version is a list": lambda t: t.replace("version: 1", "version: [1]", 1),
    "schema: hash is a string": lambda t: re.sub(r"hash:\n\s+md5: \S+\n\s+sha256: \S+",
                                                 "hash: nope", t, count=1),
    "schema: manager unknown": lambda t: t.replace("manager: conda", "manager: cargo", 1),
    "plan: no hash at all": lambda t: re.sub(r"\n\s+md5: [0-9a-f]{32}\n\s+sha256: [0-9a-f]{64}",
                                             "", t, count=1),
    "plan: url without a path": lambda t: re.sub(r"url: file://\S+\.conda", "url: nowhere",
                                                 t, count=1),
    "plan: url with an unknown scheme": lambda t: re.sub(r"url: file://(\S+\.conda)",
                                                         r"url: gopher://\1", t, count=1),
    "empty file": lambda t: "",
    "binary junk": lambda t: "\x00\x01\x02 not yaml \xff",
}


@pytest.mark.parametrize("name", sorted(CLI_MUTANTS))
def test_fuzzed_lockfile_through_the_real_cli(local: LocalChannel, tmp_path: Path,
                                              name: str) -> None:
    good = write_channel_lockfile(local, tmp_path / "good.conda-lock.yml").read_text()
    bad = CLI_MUTANTS[name](good)
    assert bad != good
    path = tmp_path / "bad.conda-lock.yml"
    path.write_text(bad)
    prefix = tmp_path / "env"
    rc, out, err, _ = run_to_end(["install", str(path), "--prefix", str(prefix)],
                                 tmp_path / "logs")
    assert rc in (1, 2), (rc, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert str(path) in err, err
    if name.startswith(("yaml", "schema")):
        assert rc == 2 and re.search(rf"{re.escape(str(path))}:\d+: ", err), err
    if name.startswith("plan"):  # the record at fault, refused before any download
        where = re.search(rf"{re.escape(str(path))}:(\d+): ", err)
        assert rc == 2 and where, err
        at = bad.splitlines()[int(where[1]) - 1]
        wanted = ("url: gopher://" if "scheme" in name else "url: nowhere" if "url" in name
                  else "hash:")
        assert wanted in at, (at, err)
    assert not prefix.exists() or not any(prefix.iterdir())
