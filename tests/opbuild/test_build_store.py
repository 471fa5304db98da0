"""The content-addressed store: keys, transactions, concurrency."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from builder.opbuild.store import MARKER, KeyInputs, Store, op_key

BASE = KeyInputs(op="msda", source_digest="a" * 64, fixups=("dispatch-scalar-type@1",),
                 torch_version="2.14.1+cu130", torch_cuda="13.0", nvcc_version="13.0.88",
                 compiler="g++ 12.2.0", arch_list=("9.0",),
                 python_abi="cpython-311-x86_64-linux-gnu", cxx_std="c++20")


def _fake_build(out: Path) -> None:
    (out / "op-0.1-cp311-cp311-linux_x86_64.whl").write_bytes(b"wheel")
    (out / "build.log").write_text("ok\n")


@pytest.mark.parametrize("change", [
    {"source_digest": "b" * 64}, {"fixups": ()}, {"torch_version": "2.14.0+cu130"},
    {"torch_cuda": "13.2"}, {"nvcc_version": "13.0.48"}, {"compiler": "g++ 13.1.0"},
    {"arch_list": ("9.0+PTX",)}, {"python_abi": "cpython-312-x86_64-linux-gnu"},
    {"cxx_std": "c++17"}, {"flags": ("NVCC_FLAGS=-O2",)}, {"op": "other"},
])
def test_every_input_changes_the_key(change: dict[str, object]) -> None:
    assert op_key(BASE) != op_key(BASE.model_copy(update=change))


def test_key_is_stable() -> None:
    assert op_key(BASE) == op_key(KeyInputs(**BASE.model_dump()))
    assert len(op_key(BASE)) == 64


def test_miss_then_hit(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        _fake_build(out)

    entry, hit = store.get_or_build("k1", build, {"x": 1})
    assert not hit and entry.wheel.read_bytes() == b"wheel"
    assert (entry.path / MARKER).exists() and (entry.path / "meta.json").exists()
    assert (tmp_path / "store" / "CACHEDIR.TAG").exists()
    start = time.perf_counter()
    again, hit = store.get_or_build("k1", build, {})
    assert hit and again == entry and len(calls) == 1
    assert time.perf_counter() - start < 0.5
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")

    def broken(out: Path) -> None:
        _fake_build(out)
        raise RuntimeError("compile failed")

    with pytest.raises(RuntimeError):
        store.get_or_build("k2", broken, {})
    assert store.lookup("k2") is None
    assert not store.entry_dir("k2").exists()
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_half_published_entry_is_rebuilt(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    stale = store.entry_dir("k3")
    stale.mkdir(parents=True)
    (stale / "junk.whl").write_bytes(b"partial")  # no marker: a killed publish
    assert store.lookup("k3") is None
    entry, hit = store.get_or_build("k3", _fake_build, {})
    assert not hit and entry.wheel.read_bytes() == b"wheel"
    assert not (stale / "junk.whl").exists()


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    store_root = tmp_path / "shared-store"
    calls: list[int] = []
    results: list[bool] = []

    def build(out: Path) -> None:
        calls.append(1)
        time.sleep(0.3)
        _fake_build(out)

    def worker() -> None:
        _, hit = Store(store_root).get_or_build("k4", build, {})
        results.append(hit)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(results) == [False, True, True, True]


def test_a_killed_builds_temp_dirs_are_removed_by_the_next_build(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    key = "e" * 64
    left = tmp_path / "store" / "tmp" / f"{key}-killed01"
    (left / "work").mkdir(parents=True)
    (left / "work" / "big.o").write_bytes(b"x" * 100)
    store.get_or_build(key, _fake_build, {})
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_sweep_spares_temp_dirs_whose_key_lock_is_held(tmp_path: Path) -> None:
    from builder.util.fs import file_lock

    store = Store(tmp_path / "store")
    tmp = tmp_path / "store" / "tmp"
    busy, gone, legacy = "b" * 64, "a" * 64, "d" * 12  # legacy: older envbuild's key[:12]
    for name in (f"{busy}-live0001", f"{gone}-dead0001", f"{legacy}-dead0002"):
        (tmp / name).mkdir(parents=True)
    store.lock_path(gone).parent.mkdir(parents=True)
    store.lock_path(gone).touch()  # left by the killed builder, nobody holds it
    store.lock_path("d" * 64).touch()
    with file_lock(store.lock_path(busy)):
        store.get_or_build("c" * 64, _fake_build, {})
        assert sorted(p.name for p in tmp.iterdir()) == [f"{busy}-live0001"]
    assert store.sweep_temp_dirs() == [f"{busy}-live0001"]
    assert list(tmp.iterdir()) == []
