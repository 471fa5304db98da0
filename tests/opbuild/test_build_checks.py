"""Checks run on the candidate wheel before it is published or installed (opbuild/checks.py).

The op is the reliability suite's cheap one (tests/helpers/reliability.py: one trivial
nvcc kernel linked into a plain C extension, a build takes seconds); its ``broken``
variant compiles and links but calls a function defined nowhere, so it fails to import
with an undefined symbol.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from builder.errors import CheckFailed
from builder.opbuild import candidate
from builder.opbuild.checks import unpack_wheel
from builder.opbuild.ops import OpBuildRequest, OpBuildResult, build_op
from builder.opbuild.store import Store
from tests.helpers.prefix import layered_venv
from tests.helpers.reliability import OP_NAME, op_variant, write_cheap_op

ARCH = ("9.0",)


def _request(root: Path, prefix: Path) -> OpBuildRequest:
    return OpBuildRequest(name=OP_NAME, source_dir=root / "op", prefix=prefix, arch_list=ARCH)


def _good_build(root: Path, prefix: Path, store: Store) -> OpBuildResult:
    write_cheap_op(root, 1)
    good = build_op(_request(root, prefix), store=store)
    assert not good.cache_hit and good.installed and op_variant(prefix) == 1
    return good


def _assert_nothing_changed(store: Store, good: OpBuildResult, prefix: Path,
                            record_before: str) -> None:
    assert sorted(d.name for d in (store.root / "ops").iterdir()) == [good.key]
    assert list((store.root / "tmp").iterdir()) == []
    assert op_variant(prefix) == 1, "the previously installed op no longer imports"
    record = prefix / ".envbuild" / "ops" / f"{OP_NAME}.json"
    assert record.read_text() == record_before


def _broken_build_fails(root: Path, prefix: Path, store: Store) -> list[str]:
    said: list[str] = []
    with pytest.raises(CheckFailed) as err:
        build_op(_request(root, prefix), store=store, log=said.append)
    msg = str(err.value)
    assert "does not import" in msg and "undefined symbol: envbuild_relop_missing" in msg
    assert "known problem [undefined-symbol]" in msg
    assert "quarantined" in msg and "build log: " in msg
    return said


@pytest.mark.compile
def test_an_op_that_does_not_import_is_neither_published_nor_installed(
        compile_ready: None, tmp_path: Path) -> None:
    prefix = layered_venv(tmp_path / "prefix")
    store = Store(tmp_path / "store")
    good = _good_build(tmp_path, prefix, store)
    assert "check-import" in [s.name for s in good.steps]
    record_before = (prefix / ".envbuild" / "ops" / f"{OP_NAME}.json").read_text()
    write_cheap_op(tmp_path, 2, broken=True)
    said = _broken_build_fails(tmp_path, prefix, store)
    assert any(s.startswith(f"building {OP_NAME}") for s in said), said
    _assert_nothing_changed(store, good, prefix, record_before)
    # the second run checks the kept (quarantined) wheel again: never served, not recompiled
    said = _broken_build_fails(tmp_path, prefix, store)
    assert not any(s.startswith(f"building {OP_NAME}") for s in said), said
    assert any("checking the kept build" in s for s in said), said
    _assert_nothing_changed(store, good, prefix, record_before)


@pytest.mark.compile
def test_a_stored_wheel_that_does_not_import_is_evicted_and_rebuilt(
        compile_ready: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store poisoned by an older envbuild (published before checking) heals itself."""
    prefix = layered_venv(tmp_path / "prefix")
    store = Store(tmp_path / "store")
    good = _good_build(tmp_path, prefix, store)
    record_before = (prefix / ".envbuild" / "ops" / f"{OP_NAME}.json").read_text()
    write_cheap_op(tmp_path, 2, broken=True)
    with monkeypatch.context() as m:  # the old order: publish without the import check
        m.setattr(candidate, "check_import_of", lambda *a: None)
        poisoned = build_op(_request(tmp_path, layered_venv(tmp_path / "other")),
                            store=store)
    assert store.lookup(poisoned.key) is not None
    said = _broken_build_fails(tmp_path, prefix, store)
    assert any("does not import" in s and "building again" in s for s in said), said
    assert any(s.startswith(f"building {OP_NAME}") for s in said), said
    _assert_nothing_changed(store, good, prefix, record_before)


def test_unpack_wheel_lays_out_like_pip_target(tmp_path: Path) -> None:
    wheel = tmp_path / "op-0.1-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("op/_C.so", b"elf")
        zf.writestr("op-0.1.data/platlib/op_ext.so", b"elf2")
        zf.writestr("op-0.1.data/scripts/tool", b"#!")
        zf.writestr("op-0.1.dist-info/RECORD", "")
    out = unpack_wheel(wheel, tmp_path / "t")
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert got == ["op-0.1.dist-info/RECORD", "op/_C.so", "op_ext.so"]
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr("../evil.so", b"x")
    with pytest.raises(CheckFailed, match="unsafe member"):
        unpack_wheel(wheel, tmp_path / "t2")
