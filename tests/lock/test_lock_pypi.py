"""The PyPI layer against real PyPI (marked ``network``: skipped with the reason offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import ConflictError
from builder.lock import LockRequest, lock
from builder.lock.lockfile import read_lockfile
from builder.lock.pypi_layer import PypiRequest, _best_wheel, solve_pypi, target_tags
from tests.helpers import SNAPSHOT, snapshot_missing_reason
from tests.helpers.lock import cu117_resolution, mini_spec


def test_target_tags_prefer_cp38_manylinux() -> None:
    tags = [str(t) for t in target_tags("3.8.19", 17)]
    assert tags[0] == "cp38-cp38-manylinux_2_17_x86_64"
    assert "cp38-abi3-manylinux2014_x86_64" in tags and "py3-none-any" in tags
    assert not any("manylinux_2_28" in t for t in tags)


def test_best_wheel_reads_percent_encoded_local_versions() -> None:
    """uv writes a local version's ``+`` as ``%2B`` in http wheel URLs: the file name is
    decoded to read its tags, and the URL is kept exactly as uv gave it."""
    ranks = {t: i for i, t in enumerate(target_tags("3.11.7", 17))}
    local = {"url": "http://h/torch-2.13.0%2Bcpu-py3-none-any.whl",
             "hashes": {"sha256": "ab" * 32}}
    generic = {"url": "http://h/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_17_x86_64.whl"
                      "?x=1#sha256=" + "cd" * 32, "hashes": {"sha256": "cd" * 32}}
    assert _best_wheel([local], ranks) is local
    assert _best_wheel([local, generic], ranks) is generic  # cp311 manylinux ranks first
    assert generic["url"].count("%2B") == 1  # not rewritten
    unhashed = {"url": "http://h/torch-2.13.0%2Bcpu-py3-none-any.whl", "hashes": {}}
    assert _best_wheel([unhashed], ranks) is None


@pytest.mark.network
def test_provided_packages_are_not_duplicated() -> None:
    """timm needs torch and torchvision: conda provides them, so neither they nor the
    nvidia-*-cu11 wheels torch pulls from PyPI appear; numpy stays at conda's version."""
    records, _ = solve_pypi(PypiRequest(
        requirements=("timm", "scipy"), python_version="3.8.19",
        provided={"torch": "1.13.1", "torchvision": "0.14.1", "numpy": "1.24.4",
                  "pillow": "10.4.0"}))
    names = {r.name for r in records}
    assert {"timm", "scipy", "huggingface-hub"} <= names
    assert not names & {"torch", "torchvision", "numpy", "pillow"}
    assert not any(n.startswith("nvidia-") for n in names)
    for r in records:
        assert len(r.sha256) == 64 and r.url.startswith("https://files.pythonhosted.org/")
    scipy = next(r for r in records if r.name == "scipy")
    assert "cp38-cp38-manylinux" in scipy.url


@pytest.mark.network
def test_conflict_with_conda_pin_is_explained() -> None:
    with pytest.raises(ConflictError) as info:
        solve_pypi(PypiRequest(requirements=("numpy>=1.26",), python_version="3.8.19",
                               provided={"numpy": "1.24.4"},
                               origins={"numpy>=1.26": "pip[0] at spec.yaml:9"}))
    assert "numpy>=1.26  <- pip[0] at spec.yaml:9" in info.value.message
    assert info.value.hint is not None and "numpy==1.24.4" in info.value.hint


@pytest.mark.network
@pytest.mark.skipif(snapshot_missing_reason() is not None, reason=snapshot_missing_reason() or "")
def test_full_lock_has_sha256_on_every_pip_record(tmp_path: Path) -> None:
    req = LockRequest(spec=mini_spec(), resolution=cu117_resolution(pip=("scipy", "shapely")),
                      output=tmp_path / "p.conda-lock.yml", channel_snapshot=SNAPSHOT)
    result = lock(req)
    assert result.pip_count >= 2
    pip = [p for p in read_lockfile(req.output).package if p.manager == "pip"]
    assert {p.name for p in pip} >= {"scipy", "shapely"}
    assert all(p.hash.sha256 and len(p.hash.sha256) == 64 for p in pip)
    assert "numpy" not in {p.name for p in pip}  # conda's numpy is used
