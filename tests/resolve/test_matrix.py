"""The matrix data against compat-facts, its loader/cache, and ``envbuild matrix``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from builder.errors import EnvbuildError
from builder.matrix import load_matrix, matrix_version
from builder.matrix import query as q
from builder.matrix.arch import Gpu, for_gpus
from builder.matrix.load import DATA_DIR
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def m():  # type: ignore[no-untyped-def]
    return load_matrix()


def test_every_row_cites_a_source(m) -> None:  # type: ignore[no-untyped-def]
    rows = [*m.torch.releases, *m.cuda.releases, *m.toolchain.nvcc, *m.builds.builds,
            *m.sources.fixups, *m.sources.pins]
    assert rows and all(r.source.strip() for r in rows)
    assert {r.trust for r in m.torch.releases} <= {"V", "S", "UNVERIFIED"}


@pytest.mark.parametrize(("gpu", "cc"), [
    ("NVIDIA GeForce RTX 4090", "8.9"), ("NVIDIA RTX A6000", "8.6"),
    ("NVIDIA H100 80GB HBM3", "9.0"), ("NVIDIA A100-SXM4-80GB", "8.0"),
    ("Tesla V100-SXM2-32GB", "7.0"), ("Tesla T4", "7.5"),
    # common variants: case, missing vendor prefix, laptop suffix
    ("geforce rtx 4090", "8.9"), ("RTX A6000", "8.6"), ("NVIDIA H100 PCIe", "9.0"),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", "8.9"), ("A100 80GB PCIe", "8.0"),
])
def test_gpu_names(m, gpu: str, cc: str) -> None:  # type: ignore[no-untyped-def]
    row = q.gpu_lookup(m, gpu)
    assert row is not None and row.cc == cc


def test_gpu_fuzzy_never_confuses_prefixes(m) -> None:  # type: ignore[no-untyped-def]
    assert q.gpu_lookup(m, "NVIDIA A10").cc == "8.6"  # not the A100
    assert q.gpu_lookup(m, "NVIDIA A100-PCIE-40GB").cc == "8.0"  # not the A10
    assert q.gpu_lookup(m, "NVIDIA RTX 6000 Ada Generation").cc == "8.9"
    assert q.gpu_lookup(m, "Quadro RTX 6000").cc == "7.5"
    assert q.gpu_lookup(m, "Radeon RX 7900") is None
    assert q.gpu_lookup(m, "4090") is None


def test_pytorch_channel_facts(m) -> None:  # type: ignore[no-untyped-def]
    # the 1.8.1/1.9 trap: the docs say 11.3, only 11.1 builds exist
    for v in ("1.8.1", "1.9.0", "1.9.1"):
        rel = m.release(v)
        assert "11.1" in rel.pytorch and "11.3" not in rel.pytorch and "11.3" in rel.traps
    # the channel ends at 2.5: later torches come from conda-forge
    assert q.provider_for(m, "conda", "2.5.1") == "pytorch"
    assert q.provider_for(m, "conda", "2.6.0") == "conda-forge"
    assert not m.release("2.6.0").pytorch
    assert m.release("1.13.1").pytorch == ("11.6", "11.7")
    assert m.release("1.13.1").torchvision == "0.14.1"


def test_pypi_defaults(m) -> None:  # type: ignore[no-untyped-def]
    expect = {"1.12.1": "10.2", "1.13.1": "11.7", "2.1.0": "12.1", "2.5.1": "12.4",
              "2.7.1": "12.6", "2.8.0": "12.8", "2.11.0": "13.0", "2.15.0": "13.2"}
    assert {v: m.release(v).pypi_default for v in expect} == expect


def test_driver_gcc_and_targets(m) -> None:  # type: ignore[no-untyped-def]
    assert m.cuda_release("11.7").driver_min == "515.43.04"
    assert q.family_floor(m, "11.7") == "450.80.02"
    assert q.family_floor(m, "12.1") == "525.60.13"
    assert q.gxx_bounds(m, m.cuda_release("11.7"), conda_forge_nvcc=False)[0] == 11
    assert q.gxx_bounds(m, m.cuda_release("11.1"), conda_forge_nvcc=False)[0] == 10
    # torch's map allows 13 for 12.3, host_config.h does not: the stricter one wins
    assert q.gxx_bounds(m, m.cuda_release("12.3"), conda_forge_nvcc=False)[0] == 12
    assert q.min_cuda_for(m, "8.9").cuda == "11.8"
    assert q.min_cuda_for(m, "9.0").cuda == "11.8"
    assert q.min_cuda_for(m, "12.0").cuda == "12.8"
    assert "7.0" not in m.cuda_release("13.0").sm


def test_cxx_std_and_extension_arches(m) -> None:  # type: ignore[no-untyped-def]
    assert [q.cxx_std(m, v).std for v in ("1.13.1", "2.0.1", "2.11.0", "2.12.0")] == [
        "c++14", "c++17", "c++17", "c++20"]
    assert "8.9" not in q.cpp_extension_arches(m, "1.13.1")
    assert "8.9" in q.cpp_extension_arches(m, "2.0.1")
    assert "12.0" not in q.cpp_extension_arches(m, "2.6.0")
    assert "12.0" in q.cpp_extension_arches(m, "2.7.1")


def test_fixups_from_torch_2_6(m) -> None:  # type: ignore[no-untyped-def]
    names = [f.name for f in q.fixups_for(m, "2.6.0", "MultiScaleDeformableAttention", None)]
    assert names == ["dispatch-scalar-type"]
    assert q.fixups_for(m, "2.5.1", "MultiScaleDeformableAttention", "msdeformattn") == []
    assert [f.name for f in q.fixups_for(m, "2.14.1", "myop", "msdeformattn")] == [
        "dispatch-scalar-type"]


def test_detectron2_pins(m) -> None:  # type: ignore[no-untyped-def]
    url = "https://github.com/facebookresearch/detectron2.git"
    v06 = [p for rule in q.pins_for(m, [(url, "d1e04565")]) for p in rule.pip]
    assert v06 == ["Pillow<10", "setuptools<82"]
    main = [p for rule in q.pins_for(m, [(url, "70f45430")]) for p in rule.pip]
    assert main == ["setuptools<82"]
    assert q.pins_for(m, [("https://github.com/other/repo", "d1e04565")]) == []


def test_arch_for_4090_on_cuda_11_1(m) -> None:  # type: ignore[no-untyped-def]
    res = for_gpus(m, [Gpu("NVIDIA GeForce RTX 4090", "8.9")], cuda="11.1",
                   cuda_sm=m.cuda_release("11.1").sm, torch="1.10.2", provider="pytorch")
    assert res.arch_list == ("8.6+PTX",) and not res.problems
    assert "sm_89" in res.warnings[0] and "11.8" in res.warnings[0]


def test_matrix_version_tracks_data(tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(DATA_DIR, copy)
    before = load_matrix(copy).version
    assert before == matrix_version()
    with open(copy / "gpus.yaml", "a", encoding="utf-8") as fh:
        fh.write("# a comment is a change too\n")
    load_matrix.cache_clear()  # parsed once per process: a new process sees the edit
    assert load_matrix(copy).version != before


def test_cache_is_used_and_corruption_ignored(tmp_path: Path) -> None:
    import os

    from builder.matrix.load import _cache_path

    copy = tmp_path / "data"
    shutil.copytree(DATA_DIR, copy)
    with open(copy / "gpus.yaml", "a", encoding="utf-8") as fh:
        fh.write("# not the shipped data: the packaged snapshot does not apply\n")
    load_matrix.cache_clear()
    m1 = load_matrix(copy)
    cache = _cache_path(m1.version)
    assert cache is not None and cache.is_file()
    assert json.loads(cache.read_text())["data"]["torch"]["releases"]
    load_matrix.cache_clear()
    assert load_matrix(copy) == m1  # rebuilt from the cache
    cache.write_text("{not json", encoding="utf-8")
    load_matrix.cache_clear()
    assert load_matrix(copy).version == m1.version  # re-parsed, not crashed
    assert os.environ["ENVBUILD_HOME"] in str(cache)


def test_packaged_snapshot_matches_the_data() -> None:
    from builder.matrix import snapshot
    from builder.matrix.load import validate_from_yaml

    version, validated = validate_from_yaml(DATA_DIR)
    data = snapshot.read(snapshot.PACKAGED, version)
    assert data is not None, "builder/matrix/data/validated.json is stale: make matrix-snapshot"
    assert data == snapshot.document(version, validated)["data"]


def test_snapshot_rebuild_equals_validation() -> None:
    from builder.matrix import snapshot
    from builder.matrix.load import validate_from_yaml

    version, validated = validate_from_yaml(DATA_DIR)
    rebuilt = snapshot.build(version, snapshot.document(version, validated)["data"])
    assert rebuilt is not None and rebuilt == validated
    assert rebuilt.model_dump() == validated.model_dump()
    assert type(rebuilt.torch.releases) is tuple and type(rebuilt.cuda.releases[0].sm) is tuple


def test_snapshot_for_other_data_or_tampered_is_not_used(tmp_path: Path) -> None:
    from builder.matrix import snapshot
    from builder.matrix.load import validate_from_yaml

    version, validated = validate_from_yaml(DATA_DIR)
    doc = snapshot.document(version, validated)
    assert snapshot.data_of(doc, version) is not None
    assert snapshot.data_of(doc, "m1-0000000000000000") is None
    doc["data"]["gpus"]["gpus"][0]["cc"] = "1.0"
    assert snapshot.data_of(doc, version) is None  # digest no longer matches
    bad = {"gpus": {"gpus": "not rows"}}
    assert snapshot.build(version, bad) is None


_RESOLVE_CASES = [
    ("mask2former.yaml", {"cuda": "11.7"}), ("mask2former.yaml", {"cuda": "11.3"}),
    ("mask2former.yaml", {"cuda": "11.7", "gpus": ("NVIDIA GeForce RTX 4090",)}),
    ("mask2former.yaml", {"cuda": "cpu"}), ("mask2former-modern.yaml", {}), ("demo.yaml", {}),
]


def test_resolve_same_from_snapshot_and_from_validation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.errors import EnvbuildError as _Err
    from builder.matrix import snapshot
    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.spec.envspec import load_spec

    spec_dir = Path(__file__).resolve().parents[2] / "envspecs"

    def answers() -> list[object]:
        out: list[object] = []
        for name, flags in _RESOLVE_CASES:
            try:
                out.append(resolve(load_spec(spec_dir / name), ResolveRequest(**flags)).to_json())
            except _Err as exc:
                out.append(("error", str(exc)))
        return out

    load_matrix.cache_clear()
    fast = answers()
    assert load_matrix() == snapshot.build(
        load_matrix().version, snapshot.read(snapshot.PACKAGED, load_matrix().version) or {})
    monkeypatch.setattr(snapshot, "PACKAGED", tmp_path / "absent.json")
    monkeypatch.setenv("ENVBUILD_HOME", str(tmp_path / "fresh-home"))
    load_matrix.cache_clear()
    try:
        validated = answers()
        # the answers came from validating the YAML (which then caches its result)
        assert list((tmp_path / "fresh-home" / "matrix").glob("validated-*.json"))
    finally:
        load_matrix.cache_clear()
    assert any(isinstance(a, dict) for a in fast)
    assert fast == validated


def test_broken_data_is_an_error(tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(DATA_DIR, copy)
    load_matrix.cache_clear()
    (copy / "gpus.yaml").write_text("schema: 1\ngpus: [{model: x}]\nsource: s\n")
    with pytest.raises(EnvbuildError, match="schema"):
        load_matrix(copy)


def test_matrix_cli_filters() -> None:
    proc = run_cli("matrix", "--torch", "1.13", "--cuda", "11.7")
    assert proc.returncode == 0, proc.stderr
    assert "1.13.1" in proc.stdout and "2.4.1" not in proc.stdout
    assert "515.43.04" in proc.stdout
    gpu = run_cli("matrix", "--gpu", "NVIDIA H100 80GB HBM3")
    assert gpu.returncode == 0 and "9.0" in gpu.stdout and "11.8" in gpu.stdout
    everything = run_cli("matrix", "--gpu", "")
    assert "NVIDIA RTX A6000" in everything.stdout
    unknown = run_cli("matrix", "--gpu", "Voodoo 5")
    assert unknown.returncode == 2 and "--gpu ''" in unknown.stderr


def test_both_yaml_parsers_read_the_shipped_data_identically() -> None:
    """The fast path (libyaml, YAML 1.1) must not read the data differently from ruamel (1.2)."""
    from pathlib import Path

    import yaml
    from ruamel.yaml import YAML

    import builder.matrix

    data = Path(builder.matrix.__file__).parent / "data"
    files = sorted(data.glob("*.yaml"))
    assert files
    for path in files:
        blob = path.read_bytes()
        assert yaml.load(blob, Loader=yaml.SafeLoader) == YAML(typ="safe").load(blob), path.name
