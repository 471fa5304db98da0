"""Turning a chosen torch build into conda match specs, pip requirements and channels.

Match specs use rattler's MatchSpec syntax (``name version build`` and
``channel::name version``).  Build-string globs come from the provider rows of
``torch.yaml`` so they match the real build strings (``py3.8_cuda11.7_cudnn8.5.0_0`` on
the pytorch channel, ``cuda126_mkl_py311_h..._0`` on conda-forge).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from builder.matrix.models import Matrix, TorchRelease, in_range
from builder.matrix.query import provider_info
from builder.spec.places import cuda_tag


@dataclass(frozen=True)
class TorchPackages:
    """What installs torch and torchvision for one provider/CUDA/python."""

    conda: tuple[str, ...]
    pip: tuple[str, ...]
    channels: tuple[str, ...]  # channels the provider needs, in priority order
    index_urls: tuple[str, ...]


def _fmt(template: str, *, cuda: str, python: str) -> str:
    return template.format(cuda=cuda, cudanodot=cuda.replace(".", ""), py=python,
                           pynodot=python.replace(".", ""))


def torch_packages(m: Matrix, release: TorchRelease, provider: str, cuda: str,
                   python: str, *, torchvision: bool = True) -> TorchPackages:
    """Conda specs (or pip pins and index) for torch (+ torchvision) + the CUDA runtime."""
    info = provider_info(m, provider)
    if provider == "pypi":
        return _pypi(release, info.index or "", cuda, torchvision)
    build = f" {_fmt(info.build, cuda=cuda, python=python)}" if info.build else ""
    conda = [f"{info.package} {release.torch}{build}"]
    if torchvision:
        conda.append(f"torchvision {release.torchvision}")
    channels: tuple[str, ...] = ()
    for row in info.cuda_package:
        if in_range(release.torch, row.torch):
            conda.append(_fmt(row.spec, cuda=cuda, python=python))
            channels = row.channels
            break
    return TorchPackages(tuple(conda), (), channels, ())


def _pypi(release: TorchRelease, index: str, cuda: str, torchvision: bool) -> TorchPackages:
    if cuda == release.pypi_default:
        # the plain PyPI wheel is this CUDA's build: no extra index, no local tag
        pins = [f"torch=={release.torch}", f"torchvision=={release.torchvision}"]
        return TorchPackages((), tuple(pins[: 1 + torchvision]), ("conda-forge",), ())
    tag = cuda_tag(cuda)  # the wheel index's local version tag: cu117, cpu
    pins = [f"torch=={release.torch}+{tag}", f"torchvision=={release.torchvision}+{tag}"]
    return TorchPackages((), tuple(pins[: 1 + torchvision]), ("conda-forge",),
                         (index.format(tag=tag),))


def package_name(spec: str) -> str:
    """The package name of a match spec or requirement (``chan::name 1.*`` -> ``name``)."""
    text = spec.split("::", 1)[-1].strip()
    for sep in (" ", "=", "<", ">", "!", "~", "[", ";", "@"):
        text = text.split(sep, 1)[0]
    return text.lower()


def merge_specs(*groups: Iterable[str]) -> tuple[str, ...]:
    """Concatenate spec lists without repeating a package needlessly.

    The first spec for each name is kept.  A later spec for the same name is kept too
    when it constrains something (``ninja >=1.11`` after the matrix's bare ``ninja``):
    the solver applies both, so a user's constraint is never silently dropped.
    """
    seen: set[str] = set()
    out: list[str] = []
    for group in groups:
        for spec in group:
            name = package_name(spec)
            if name not in seen:
                seen.add(name)
                out.append(spec)
            elif spec not in out and spec.split("::", 1)[-1].strip().lower() != name:
                out.append(spec)
    return tuple(out)


def spec_channel(spec: str) -> str | None:
    """The channel of a ``channel::name`` spec, or None."""
    return spec.split("::", 1)[0] if "::" in spec else None


def order_channels(base: Sequence[str], required: Sequence[str],
                   toolchain_specs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Channels in an order that solves, and the required ones the spec had left out.

    The spec's (or provider's) channels first, then required channels it lacked, then
    the channels toolchain specs name, label channels last: under strict channel
    priority a ``nvidia/label/...`` channel listed before ``nvidia`` hides the nvidia
    channel's newer-minor packages that pytorch-cuda needs (channels-snapshot README).
    """
    out = list(base)
    added = [c for c in required if c not in out]
    out.extend(added)
    named = [c for c in (spec_channel(s) for s in toolchain_specs) if c and c not in out]
    plain = [c for c in dict.fromkeys(named) if "/label/" not in c]
    labels = [c for c in dict.fromkeys(named) if "/label/" in c]
    added.extend(plain)
    out.extend(plain + labels)
    return out, added
