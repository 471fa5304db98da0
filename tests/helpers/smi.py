"""The recorded machines of ``tests/data/nvidia-smi`` and the fake ``nvidia-smi`` replaying them.

A machine is a directory name there (``server-4090-a6000``, ``h100``, ``no-driver``) or
the path of a copy a test edited.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tests.helpers import DATA

if TYPE_CHECKING:
    import pytest

    from builder.host import NvidiaSmiProbe

SMI_DATA = DATA / "nvidia-smi"
FAKE_SMI = SMI_DATA / "fake-nvidia-smi"


def smi_env(machine: str | Path) -> dict[str, str]:
    """The environment under which envbuild (in any process) sees ``machine``'s GPUs."""
    return {"ENVBUILD_NVIDIA_SMI": str(FAKE_SMI), "FAKE_SMI_DIR": str(SMI_DATA / machine)}


def fake_gpus(monkeypatch: pytest.MonkeyPatch, machine: str | Path) -> None:
    """This process (and what it starts) sees ``machine``'s GPUs."""
    for key, value in smi_env(machine).items():
        monkeypatch.setenv(key, value)


def smi_probe(monkeypatch: pytest.MonkeyPatch, machine: str | Path) -> NvidiaSmiProbe:
    """An nvidia-smi probe that runs the fake one on ``machine``."""
    from builder.host import NvidiaSmiProbe

    monkeypatch.setenv("FAKE_SMI_DIR", str(SMI_DATA / machine))
    return NvidiaSmiProbe(executable=str(FAKE_SMI))
