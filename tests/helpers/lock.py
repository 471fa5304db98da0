"""Helpers for the lock tests: hand-built resolutions matching the snapshot's real stacks."""

from __future__ import annotations

from pathlib import Path

from builder.resolve.resolution import HostCompiler, Resolution, Toolchain
from builder.spec.envspec import LoadedSpec, load_spec
from tests.helpers import DATA

MINI_SPEC = DATA / "lock" / "m2f-mini.yaml"


def mini_spec(tmp_path: Path | None = None, extra: str = "") -> LoadedSpec:
    """The small test envspec (optionally copied to ``tmp_path`` with extra YAML appended)."""
    if tmp_path is None:
        return load_spec(MINI_SPEC)
    target = tmp_path / "envspecs" / "m2f-mini.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(MINI_SPEC.read_text() + extra)
    return load_spec(target)


def cu117_resolution(*, pip: tuple[str, ...] = (), conda_extra: tuple[str, ...] = (),
                     channels: tuple[str, ...] = ("pytorch", "nvidia", "conda-forge"),
                     nvcc_spec: str = "nvidia::cuda-nvcc 11.7.*",
                     fallbacks: tuple[str, ...] = (
                         "nvidia/label/cuda-11.8.0::cuda-nvcc 11.8.*",)) -> Resolution:
    """torch 1.13.1 + CUDA 11.7 from the pytorch channel, as the resolver decides it."""
    return Resolution(
        name="m2f-mini", python="3.8", torch="1.13.1", torchvision="0.14.1", cuda="11.7",
        provider="conda", channels=channels, arch_list=("8.6", "8.9+PTX"),
        host_compiler=HostCompiler(name="gxx", max_major=11, spec="gxx_linux-64 11.*"),
        toolchain=Toolchain(nvcc_version="11.7", nvcc_spec=nvcc_spec, nvcc_source="conda",
                            cxx_std="c++14", nvcc_fallback_specs=fallbacks),
        conda=("python 3.8.*", "pytorch 1.13.1", "torchvision 0.14.1", "pytorch-cuda 11.7.*",
               "ninja", *conda_extra),
        pip=pip, virtual_packages={"__cuda": "12.0", "__glibc": "2.17"},
        matrix_version="test-1",
    )
