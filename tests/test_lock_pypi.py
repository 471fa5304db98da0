"""The PyPI layer against real PyPI (marked ``network``: skipped with the reason offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import ConflictError
from builder.lock import LockRequest, lock
from builder.lock.lockfile import read_lockfile
from builder.lock.pypi_layer import PypiRequest, solve_pypi, target_tags
from tests.helpers import SNAPSHOT, snapshot_missing_reason
from tests.helpers.lock import cu117_resolution, mini_spec


def test_target_tags_prefer_cp38_manylinux() -> None:
    tags = [str(t) for t in target_tags("3.8.19", 17)]
    assert tags[0] == "cp38-cp38-manylinux_2_17_x86_64"
    assert "cp38-abi3-manylinux2014_x86_64" in tags and "py3-none-any" in tags
    assert not any("manylinux_2_28" in t for t in tags)


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
