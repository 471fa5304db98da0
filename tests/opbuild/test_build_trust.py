"""Build results you can trust: reproducible, dependency-checked, kept when a check fails,
never silently colliding (builder/opbuild/{reproducible,deps,quarantine,collisions}.py).

One real compile of the fixture op ``tests/data/ops/needsdep`` (nvcc kernel + C extension,
seconds) serves the quarantine / dependency / re-check story; the reproducibility test
compiles it once more.  The prefix's "dependency" is a distribution written by hand into
its site-packages, so nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from builder.errors import CheckFailed
from builder.opbuild.ops import OpBuildRequest, build_op, install_prepared, prepare_op
from builder.opbuild.quarantine import quarantine_dir
from builder.opbuild.records import OpOrigin, read_record
from builder.opbuild.repro_check import check_reproducible
from builder.opbuild.store import Store
from builder.sanity.report import run_sanity, table
from tests.helpers import DATA
from tests.helpers.prefix import layered_venv

pytestmark = pytest.mark.compile
ARCH = ("9.0",)
OP = "envbuild_needsdep"
ORIGIN_A = OpOrigin(source="mine", location="/src/project-a")


def _site(prefix: Path) -> Path:
    return next(prefix.glob("lib/python*/site-packages"))


def _give_dep(prefix: Path, version: str, *, module: bool) -> None:
    """Install (by hand) ``envbuild-fixture-dep`` ``version``, with or without its module."""
    site = _site(prefix)
    for old in site.glob("envbuild_fixture_dep*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    info = site / f"envbuild_fixture_dep-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: envbuild-fixture-dep\nVersion: {version}\n")
    files = [f"{info.name}/METADATA", f"{info.name}/RECORD"]
    if module:
        (site / "envbuild_fixture_dep.py").write_text("VALUE = 1\n")
        files.append("envbuild_fixture_dep.py")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def _request(prefix: Path, origin: OpOrigin = ORIGIN_A) -> OpBuildRequest:
    return OpBuildRequest(name=OP, source_dir=DATA / "ops" / "needsdep", prefix=prefix,
                          arch_list=ARCH, origin=origin, sanity="import")


def _fails(prefix: Path, store: Store) -> tuple[str, list[str]]:
    said: list[str] = []
    with pytest.raises(CheckFailed) as err:
        build_op(_request(prefix), store=store, log=said.append)
    return str(err.value), said


def test_a_failed_check_keeps_the_build_and_a_fixed_prefix_rechecks_it(
        compile_ready: None, tmp_path: Path) -> None:
    prefix = layered_venv(tmp_path / "prefix")
    store = Store(tmp_path / "store")

    # 1. compiled, then the dependency check fails: named, with its pip: line; kept
    msg, said = _fails(prefix, store)
    assert any(s.startswith(f"building {OP}") for s in said), said
    assert "check-deps failed" in msg and "envbuild-fixture-dep>=1.0: not installed" in msg
    assert 'pip: "envbuild-fixture-dep>=1.0"' in msg
    assert "envbuild-never-needed" not in msg  # its marker does not apply to this python
    kept = quarantine_dir(store.root, next((store.root / "quarantine").iterdir()).name)
    assert f"build log: {kept / 'build.log'}" in msg
    assert f"building '{OP}' extension" in (kept / "build.log").read_text()
    assert len(list(kept.glob("*.whl"))) == 1
    assert list((store.root / "ops").glob("[0-9a-f]*")) == []  # never published
    assert read_record(prefix, OP) is None  # never installed

    # 2. a conflicting version: named as such, and the kept wheel is checked, not compiled
    _give_dep(prefix, "0.5", module=True)
    msg, said = _fails(prefix, store)
    assert "installed 0.5, which conflicts" in msg
    assert "the kept build of envbuild_needsdep (not compiled again) still fails check-deps" in msg
    assert not any(s.startswith(f"building {OP}") for s in said), said
    assert any("checking the kept build" in s for s in said), said

    # 3. the distribution is there but not its module: the import check names the requirement
    _give_dep(prefix, "1.2", module=False)
    msg, _ = _fails(prefix, store)
    assert "still fails check-import" in msg and "No module named 'envbuild_fixture_dep'" in msg
    assert "comes from envbuild-fixture-dep, required by the op's metadata" in msg
    assert 'add pip: "envbuild-fixture-dep>=1.0"' in msg

    # 4. fixed: the kept build passes, is published and installed, without a compile
    _give_dep(prefix, "1.2", module=True)
    res = build_op(_request(prefix), store=store)
    assert res.rechecked and not res.cache_hit and res.installed
    assert "compile" not in [s.name for s in res.steps]
    assert not kept.exists() and store.lookup(res.key) is not None
    record = read_record(prefix, OP)
    assert record is not None and record.modules == (OP,)
    assert record.origin.model_copy(update={"digest": ""}) == ORIGIN_A
    assert len(record.origin.digest) == 64  # the tree that was built
    assert record.wheel_sha256 == res.wheel_sha256

    # sanity covers the import op, and names the op and source its check tested
    for kinds in ((), ("import",)):
        report = run_sanity(prefix, kinds)
        [row] = [c for c in report.checks if c.check == f"{OP}.import"]
        assert row.status == "PASS" and row.op == OP, row
        assert row.source == "source mine (/src/project-a)" and OP in row.reason
        assert "mine" in table(report)

    # 5. the same op from another project's tree may not replace it silently
    theirs = tmp_path / "theirs"
    shutil.copytree(DATA / "ops" / "needsdep", theirs)
    with (theirs / "src" / "module.c").open("a") as fh:
        fh.write("/* another project's copy */\n")
    other = OpOrigin(source="theirs", location="/src/project-b")
    req = _request(prefix, other).model_copy(update={"source_dir": theirs})
    with pytest.raises(CheckFailed) as err:
        install_prepared([prepare_op(req, store=store)])
    text = str(err.value)
    assert "op envbuild_needsdep (source theirs (/src/project-b))" in text
    assert "already has from envbuild-needsdep 0.1 (op envbuild_needsdep from source mine" in text
    assert read_record(prefix, OP) == record  # nothing changed


def test_the_same_key_builds_to_the_same_bytes(compile_ready: None,
                                              tmp_path: Path) -> None:
    """A second build in a fresh temp dir, for a prefix at another path, gives the same
    wheel; the build dir is mapped away (``__FILE__`` reads ``/envbuild/build/...``)."""
    first_prefix = layered_venv(tmp_path / "a")
    _give_dep(first_prefix, "1.0", module=True)
    store = Store(tmp_path / "store")
    first = build_op(_request(first_prefix), store=store)
    other_prefix = layered_venv(tmp_path / "elsewhere" / "deeper")
    _give_dep(other_prefix, "1.0", module=True)
    prepared = prepare_op(_request(other_prefix), store=store)
    assert prepared.hit and prepared.entry.sha256 == first.wheel_sha256
    check = check_reproducible(prepared.req, prepared, store)
    assert check.identical, check.differing
    assert check.rebuilt_sha256 == first.wheel_sha256 and check.seconds > 0
    with zipfile.ZipFile(first.wheel) as zf:
        [so] = [n for n in zf.namelist() if n.endswith(".so")]
        data = zf.read(so)
    for leaked in (str(tmp_path), str(store.root)):
        assert leaked.encode() not in data, f"{leaked} is embedded in {so}"
    out = subprocess.run([str(first_prefix / "bin" / "python"), "-c",
                          f"import {OP}; print({OP}.source_file())"],
                         capture_output=True, text=True, check=True)
    # the mapped name, or a path relative to the build dir where ccache rewrote it
    assert out.stdout.strip() in ("/envbuild/build/src/src/module.c", "src/module.c")
