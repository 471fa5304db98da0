"""Host facts: nvidia-smi parsing, the NVML and nvidia-smi probes, compilers and nvcc."""

from __future__ import annotations

import os
import platform
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from builder.host import (
    NvidiaSmiProbe,
    NvmlProbe,
    ProbeUnavailable,
    default_probes,
    detect_driver,
    probe_host,
    smi,
    toolchain,
)
from tests.helpers.smi import FAKE_SMI, SMI_DATA, smi_probe


def test_query_csv_keeps_full_names_and_real_numbers() -> None:
    gpus, driver = smi.parse_query_gpu((SMI_DATA / "server-4090-a6000/query-gpu.csv").read_text())
    assert driver == "525.78.01"
    assert [(g.index, g.name, g.compute_capability, g.memory_total_mib) for g in gpus] == [
        (0, "NVIDIA GeForce RTX 4090", "8.9", 24564),
        (1, "NVIDIA RTX A6000", "8.6", 49140),
    ]
    assert gpus[1].pci_bus_id == "00000000:CA:00.0"
    assert gpus[1].sm == "sm_86"


def test_query_csv_rejects_wrong_column_count() -> None:
    with pytest.raises(smi.SmiParseError, match="expected 9 columns"):
        smi.parse_query_gpu("0, NVIDIA H100 80GB HBM3, 81559\n")


def test_not_available_values_become_none() -> None:
    gpus, _ = smi.parse_query_gpu(
        "0, 00000000:01:00.0, NVIDIA A100-SXM4-40GB, GPU-x, [N/A], 40960, [N/A], "
        "[Not Supported], 580.126.09\n")
    assert gpus[0].compute_capability is None
    assert gpus[0].memory_used_mib is None and gpus[0].utilization_pct is None


@pytest.mark.parametrize(("fixture", "driver", "cuda"), [
    ("server-4090-a6000/nvidia-smi.txt", "525.78.01", "12.0"),
    ("h100/nvidia-smi.txt", "535.129.03", "12.2"),
    ("banner-r610.txt", "610.43.02", "13.3"),
])
def test_banner_gives_driver_and_cuda(fixture: str, driver: str, cuda: str) -> None:
    assert smi.parse_banner((SMI_DATA / fixture).read_text()) == (driver, cuda)


def test_bus_ids_are_normalised() -> None:
    assert smi.normalize_bus_id("0000:ca:00.0") == "00000000:CA:00.0"
    assert smi.normalize_bus_id("00000000:4E:00.0") == "00000000:4E:00.0"


def test_smi_probe_reads_recorded_server(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = smi_probe(monkeypatch, "server-4090-a6000").probe()
    assert (facts.backend, facts.driver_version, facts.cuda_version) == (
        "nvidia-smi", "525.78.01", "12.0")
    assert [g.process_count for g in facts.gpus] == [0, 1]
    assert [g.utilization_pct for g in facts.gpus] == [0, 97]
    assert facts.notes == ()


def test_smi_probe_reads_recorded_h100(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = smi_probe(monkeypatch, "h100").probe()
    (gpu,) = facts.gpus
    assert (gpu.name, gpu.compute_capability, gpu.memory_total_mib, gpu.memory_used_mib) == (
        "NVIDIA H100 80GB HBM3", "9.0", 81559, 72459)
    assert facts.cuda_version == "12.2"


def test_old_driver_without_compute_cap_falls_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = tmp_path / "old"
    shutil.copytree(SMI_DATA / "server-4090-a6000", machine)
    (machine / "no-compute-cap").touch()
    facts = smi_probe(monkeypatch, machine).probe()
    assert [g.name for g in facts.gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000"]
    assert all(g.compute_capability is None for g in facts.gpus)
    assert facts.gpus[1].memory_total_mib == 49140


def test_no_driver_is_unavailable_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProbeUnavailable, match="couldn't communicate with the NVIDIA driver"):
        smi_probe(monkeypatch, "no-driver").probe()


def test_detect_driver_never_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = NvidiaSmiProbe(executable=str(tmp_path / "no-such-nvidia-smi"))
    facts = detect_driver([NvmlProbe(nvml=_BrokenNvml()), missing,
                           smi_probe(monkeypatch, "no-driver")])
    assert facts.backend == "none" and not facts.has_driver and facts.gpus == ()
    assert facts.problem is not None
    assert "Driver Not Loaded" in facts.problem and "exited with 9" in facts.problem


def test_env_variable_selects_nvidia_smi_only(monkeypatch: pytest.MonkeyPatch) -> None:
    probes = default_probes({"ENVBUILD_NVIDIA_SMI": str(FAKE_SMI)})
    assert [p.name for p in probes] == ["nvidia-smi"]
    assert isinstance(probes[0], NvidiaSmiProbe) and probes[0].executable == str(FAKE_SMI)
    assert [p.name for p in default_probes({})] == ["nvml", "nvidia-smi"]


# --- NVML through a fake pynvml module carrying the recorded server's values ---------------

class _BrokenNvml:
    def nvmlInit(self) -> None:
        raise RuntimeError("Driver Not Loaded")


class _FakeNvml:
    """Just the pynvml calls NvmlProbe makes, answering like nvidia-ml-py 12+."""

    rows: list[tuple[Any, ...]] = [
        ("00000000:4E:00.0", b"NVIDIA GeForce RTX 4090", (8, 9), 24564, 507, 0, 0),
        ("00000000:CA:00.0", "NVIDIA RTX A6000", (8, 6), 49140, 12949, 97, 1)]

    def __init__(self) -> None:
        self.shut = False

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None:
        self.shut = True
    def nvmlSystemGetDriverVersion(self) -> str:
        return "525.78.01"
    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return 12000
    def nvmlDeviceGetCount(self) -> int:
        return len(self.rows)
    def nvmlDeviceGetHandleByIndex(self, i: int) -> Any:
        return self.rows[i]
    def nvmlDeviceGetPciInfo(self, h: Any) -> Any:
        return SimpleNamespace(busId=h[0].encode())
    def nvmlDeviceGetName(self, h: Any) -> Any:
        return h[1]
    def nvmlDeviceGetUUID(self, h: Any) -> str:
        return f"GPU-{h[0]}"
    def nvmlDeviceGetCudaComputeCapability(self, h: Any) -> tuple[int, int]:
        return h[2]  # type: ignore[no-any-return]
    def nvmlDeviceGetMemoryInfo(self, h: Any) -> Any:
        return SimpleNamespace(total=h[3] * 1024 * 1024, used=h[4] * 1024 * 1024)
    def nvmlDeviceGetUtilizationRates(self, h: Any) -> Any:
        if h[5] is None:
            raise RuntimeError("Not Supported")
        return SimpleNamespace(gpu=h[5])
    def nvmlDeviceGetComputeRunningProcesses(self, h: Any) -> list[object]:
        return [object()] * h[6]


def test_nvml_probe_matches_the_smi_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = _FakeNvml()
    facts = NvmlProbe(nvml=nvml).probe()
    assert nvml.shut
    assert (facts.backend, facts.driver_version, facts.cuda_version) == (
        "nvml", "525.78.01", "12.0")
    smi_facts = smi_probe(monkeypatch, "server-4090-a6000").probe()
    strip = [(g.index, g.pci_bus_id, g.name, g.compute_capability, g.memory_total_mib,
              g.memory_used_mib, g.utilization_pct, g.process_count) for g in facts.gpus]
    assert strip == [(g.index, g.pci_bus_id, g.name, g.compute_capability,
                      g.memory_total_mib, g.memory_used_mib, g.utilization_pct,
                      g.process_count) for g in smi_facts.gpus]


def test_nvml_unsupported_value_is_unknown_not_a_crash() -> None:
    nvml = _FakeNvml()
    nvml.rows = [("0000:01:00.0", "NVIDIA H100 80GB HBM3", (9, 0), 81559, 72459, None, 1)]
    (gpu,) = NvmlProbe(nvml=nvml).probe().gpus
    assert gpu.utilization_pct is None and gpu.pci_bus_id == "00000000:01:00.0"


def test_nvml_without_driver_is_unavailable() -> None:
    with pytest.raises(ProbeUnavailable, match="NVML: Driver Not Loaded"):
        NvmlProbe(nvml=_BrokenNvml()).probe()


# --- compilers, CUDA_HOME, nvcc --------------------------------------------------------------

def _script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _fake_toolkit(root: Path, release: str, full: str) -> Path:
    """A stand-in nvcc answering --version and -v --dryrun like the real one."""
    return _script(root / "bin" / "nvcc", f"""#!/bin/sh
case "$*" in
  *--dryrun*) echo "#$ _HERE_={root}/bin" >&2; echo "#$ TOP={root}/bin/.." >&2 ;;
  *--version*) echo "Cuda compilation tools, release {release}, V{full}" ;;
esac
""")


def test_dryrun_top_line_names_the_toolkit() -> None:
    text = (SMI_DATA / "nvcc-dryrun-cuda13.txt").read_text()
    assert toolchain.toolkit_root_from_dryrun(text) == "/usr/local/cuda-13.0"


def test_wrapper_script_is_followed_to_the_real_nvcc(tmp_path: Path) -> None:
    real = _fake_toolkit(tmp_path / "cuda-11.7", "11.7", "11.7.99")
    _script(tmp_path / "bin" / "nvcc", f'#!/bin/sh\nexec {real} "$@"\n')
    info = toolchain.nvcc_on_path({"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert info.found and info.is_wrapper
    assert info.path == str(tmp_path / "bin" / "nvcc")
    assert info.real_path == str(real)
    assert info.toolkit_root == str(tmp_path / "cuda-11.7")
    assert (info.release, info.version) == ("11.7", "11.7.99")
    assert any("wrapper script" in v for v in info.via)


def test_symlinked_nvcc_is_followed(tmp_path: Path) -> None:
    real = _fake_toolkit(tmp_path / "cuda-12.1", "12.1", "12.1.105")
    (tmp_path / "bin").mkdir()
    os.symlink(real, tmp_path / "bin" / "nvcc")
    info = toolchain.nvcc_on_path({"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert info.real_path == str(real) and info.release == "12.1"
    assert any(v.startswith("symlink") for v in info.via)


def test_no_nvcc_is_a_fact_not_an_error(tmp_path: Path) -> None:
    info = toolchain.nvcc_on_path({"PATH": str(tmp_path)})
    assert not info.found and "nvcc" in (info.problem or "")


@pytest.mark.skipif(not os.path.exists("/usr/local/bin/nvcc"), reason="no /usr/local/bin/nvcc")
def test_this_machines_nvcc_wrapper() -> None:
    info = toolchain.nvcc_on_path({"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert info.found and info.release and info.toolkit_root


def test_cuda_home(tmp_path: Path) -> None:
    assert toolchain.cuda_home({}).value is None
    _fake_toolkit(tmp_path / "cuda-11.7", "11.7", "11.7.99")
    home = toolchain.cuda_home({"CUDA_HOME": str(tmp_path / "cuda-11.7")})
    assert (home.variable, home.exists, home.nvcc_release) == ("CUDA_HOME", True, "11.7")
    gone = toolchain.cuda_home({"CUDA_PATH": str(tmp_path / "nope")})
    assert (gone.variable, gone.exists) == ("CUDA_PATH", False)


def test_compilers_and_glibc(tmp_path: Path) -> None:
    _script(tmp_path / "g++", "#!/bin/sh\necho 11.4.0\n")
    info = toolchain.compiler("g++", env={"PATH": str(tmp_path)})
    assert (info.version, info.major) == ("11.4.0", 11)
    missing = toolchain.compiler("gcc", env={"PATH": str(tmp_path)})
    assert missing.version is None and "not found" in (missing.problem or "")
    cxx = toolchain.cxx_from_env({"PATH": str(tmp_path), "CXX": "g++"})
    assert cxx is not None and cxx.version == "11.4.0"
    # the C library this python runs on, as the standard library reads it (None off glibc)
    libc, version = platform.libc_ver()
    assert toolchain.glibc_version() == (version if libc == "glibc" else None)


def test_probe_host_without_gpu_never_crashes(tmp_path: Path) -> None:
    facts = probe_host(probes=[], env={"PATH": str(tmp_path)})
    assert facts.driver.backend == "none"
    assert not facts.nvcc.found and facts.gcc.version is None
    data = facts.to_json()
    assert data["driver"]["gpus"] == [] and data["nvcc"]["found"] is False
