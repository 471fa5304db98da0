"""``envbuild doctor``: checks on recorded machines, the spec verdict, exit codes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from builder.doctor.checks import arch_verdict, can_run_cuda, cuda_support, parse_arch
from builder.doctor.matrix import MatrixKnowledge
from builder.doctor.report import DoctorRequest, run_doctor
from builder.doctor.spec import resolution_findings
from builder.host import HostFacts, NvidiaSmiProbe, probe_host
from builder.resolve.resolution import HostCompiler, Resolution, Toolchain
from tests.helpers import DATA, run_cli

SMI_DATA = DATA / "nvidia-smi"
FAKE_SMI = str(SMI_DATA / "fake-nvidia-smi")
KNOW = MatrixKnowledge()


def _env(machine: str) -> dict[str, str]:
    return {"ENVBUILD_NVIDIA_SMI": FAKE_SMI, "FAKE_SMI_DIR": str(SMI_DATA / machine)}


def _host(machine: str, monkeypatch: pytest.MonkeyPatch) -> HostFacts:
    monkeypatch.setenv("FAKE_SMI_DIR", str(SMI_DATA / machine))
    return probe_host(probes=[NvidiaSmiProbe(executable=FAKE_SMI)])


def _resolution(torch: str, cuda: str, arch: tuple[str, ...], *, driver_min: str | None = None,
                compiler: str = "gxx", gcc_max: int = 10) -> Resolution:
    return Resolution(
        name="mask2former", python="3.8", torch=torch, torchvision="0.10.0", cuda=cuda,
        provider="conda", channels=("pytorch", "nvidia", "conda-forge"), arch_list=arch,
        host_compiler=HostCompiler(name=compiler, max_major=gcc_max),
        toolchain=Toolchain(nvcc_version=cuda, nvcc_spec=None, nvcc_source="conda",
                            cxx_std="c++14"),
        conda=(), pip=(), driver_min=driver_min)


# --- pure checks -----------------------------------------------------------------------------

def test_arch_entries_parse() -> None:
    assert parse_arch("8.9+PTX") == (8, 9, True)
    assert parse_arch("sm_86") == (8, 6, False)
    assert parse_arch("compute_37") == (3, 7, True)
    assert parse_arch("9.0a") == (9, 0, False)
    assert parse_arch("junk") is None


def test_arch_verdicts_for_the_4090() -> None:
    assert arch_verdict("8.9", ["8.6", "8.9"])[0] == "OK"
    level, why = arch_verdict("8.9", ["3.7", "5.0", "6.0", "7.0", "7.5", "8.0", "8.6"])
    assert level == "WARN" and "sm_86" in why and "binary compatibility" in why
    assert arch_verdict("8.9", ["3.7", "5.0", "6.0", "7.0"])[0] == "FAIL"
    level, why = arch_verdict("9.0", ["7.0", "8.0+PTX"])
    assert level == "WARN" and "PTX" in why


def test_driver_525_can_run() -> None:
    assert can_run_cuda("525.78.01", "12.0", "11.7", KNOW)[0] == "OK"
    level, why = can_run_cuda("525.78.01", "12.0", "12.1", KNOW)
    assert level == "WARN" and "minor-version compatibility" in why and "525.60.13" in why
    level, why = can_run_cuda("525.78.01", "12.0", "13.0", KNOW)
    assert level == "FAIL" and "580.65.06" in why
    lines = cuda_support("525.78.01", "12.0", KNOW).lines
    assert lines[0].startswith("CUDA <= 12.0: natively")
    assert any("12.x" in line and "PTX" in line for line in lines)
    assert any(line.startswith("CUDA 13.x: not runnable") for line in lines)


# --- the spec verdict on the recorded server -------------------------------------------------

def test_mask2former_cuda_11_1_verdict_on_the_4090(monkeypatch: pytest.MonkeyPatch) -> None:
    host = _host("server-4090-a6000", monkeypatch)
    res = _resolution("1.9.0", "11.1", ("3.7", "5.0", "6.0", "7.0", "7.5", "8.0", "8.6"))
    by_topic = {f.topic: f for f in resolution_findings(res, host, KNOW)}
    g0, g1 = by_topic["gpu 0"], by_topic["gpu 1"]
    assert g0.level == "WARN"
    assert "NVIDIA GeForce RTX 4090 (sm_89)" in g0.message
    assert "nvcc 11.1 cannot compile sm_89" in g0.message and "sm_86" in g0.message
    assert g0.fix and "sm_89" in g0.fix
    assert g1.level == "OK" and "native sm_86" in g1.message
    assert by_topic["driver"].level == "OK"


def test_driver_floor_and_compiler_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    host = _host("server-4090-a6000", monkeypatch)
    res = _resolution("2.6.0", "12.6", ("8.6", "8.9"), driver_min="560.28.03",
                      compiler="g++", gcc_max=10)
    found = {f.topic: f for f in resolution_findings(res, host, KNOW)}
    assert found["driver"].level == "FAIL" and "560.28.03" in found["driver"].message
    assert found["compiler"].level == ("FAIL" if (host.gxx.major or 0) > 10 else "OK")
    ok = {f.topic: f for f in resolution_findings(
        _resolution("2.1.0", "12.1", ("8.6", "8.9")), host, KNOW)}
    assert ok["driver"].level == "WARN" and "minor-version" in ok["driver"].message
    assert ok["gpu 0"].level == "OK" and ok["compiler"].level == "OK"


def test_h100_with_an_old_torch_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    host = _host("h100", monkeypatch)
    res = _resolution("1.9.0", "11.1", ("3.7", "5.0", "6.0", "7.0", "7.5", "8.0", "8.6"))
    (gpu,) = [f for f in resolution_findings(res, host, KNOW) if f.topic == "gpu 0"]
    assert gpu.level == "FAIL" and "no kernel image for sm_90" in gpu.message


# --- the machine report and the CLI ----------------------------------------------------------

def test_report_without_gpu_is_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SMI_DIR", str(SMI_DATA / "no-driver"))
    report = run_doctor(DoctorRequest(), probes=[NvidiaSmiProbe(executable=FAKE_SMI)],
                        env={"PATH": "/usr/bin:/bin"})
    assert not report.failed and report.support is None
    assert report.findings[0].topic == "driver" and report.findings[0].level == "WARN"


def test_cli_doctor_without_gpu_exits_0() -> None:
    out = run_cli("doctor", env=_env("no-driver"))
    assert out.returncode == 0, out.stderr
    assert "no NVIDIA driver or GPU found" in out.stdout
    assert "couldn't communicate with the NVIDIA driver" in out.stdout


def test_cli_doctor_server_json() -> None:
    out = run_cli("doctor", "--json", env={**_env("server-4090-a6000"), "CUDA_HOME": ""})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    gpus = data["host"]["driver"]["gpus"]
    assert [g["name"] for g in gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000"]
    assert [g["compute_capability"] for g in gpus] == ["8.9", "8.6"]
    assert data["ok"] is True and data["spec"] is None
    levels = {(f["topic"], f["level"]) for f in data["findings"]}
    assert ("CUDA_HOME", "WARN") in levels
    assert all(f["fix"] for f in data["findings"] if f["level"] != "OK")


def test_cli_doctor_flags_cuda_home_disagreeing_with_nvcc(tmp_path: Path) -> None:
    home = tmp_path / "cuda-11.7"
    (home / "bin").mkdir(parents=True)
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 11.7, V11.7.99'\n")
    nvcc.chmod(0o755)
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    other = tmp_path / "cuda-12.1" / "bin"
    other.mkdir(parents=True)
    (other / "nvcc").write_text(
        "#!/bin/sh\ncase \"$*\" in *--dryrun*) echo \"#$ TOP=" + str(other) + "/..\" >&2;;"
        " *) echo 'Cuda compilation tools, release 12.1, V12.1.105';; esac\n")
    (other / "nvcc").chmod(0o755)
    out = run_cli("doctor", "--json", env={
        **_env("server-4090-a6000"), "CUDA_HOME": str(home),
        "PATH": f"{other}:/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    msgs = [f["message"] for f in json.loads(out.stdout)["findings"] if f["level"] == "WARN"]
    assert any("CUDA_HOME has CUDA 11.7 but the nvcc on PATH is 12.1" in m for m in msgs)


_HAVE_RESOLVER = importlib.util.find_spec("builder.resolve.resolver") is not None
_M2F = """name: mask2former
python: "3.8"
torch: ">=1.9,<2.5"
torch_from: conda
cuda: {default: "11.7", allowed: ["11.1", "11.7", "11.8", "12.1"]}
channels: [pytorch, nvidia, conda-forge]
"""


@pytest.mark.skipif(not _HAVE_RESOLVER, reason="needs builder/resolve/resolver.py")
@pytest.mark.parametrize("cuda", ["11.1", "11.7"])
def test_cli_doctor_with_spec_gives_a_verdict(cuda: str, tmp_path: Path) -> None:
    spec = tmp_path / "mask2former.yaml"
    spec.write_text(_M2F)
    out = run_cli("doctor", str(spec), "--cuda", cuda, "--json",
                  env=_env("server-4090-a6000"))
    assert out.returncode in (0, 1), out.stderr
    data = json.loads(out.stdout)
    assert data["resolution"] is not None and data["resolution"]["cuda"] == cuda
    gpu0 = next(f for f in data["spec_findings"] if f["topic"] == "gpu 0")
    assert "NVIDIA GeForce RTX 4090 (sm_89)" in gpu0["message"]
    assert gpu0["level"] in ("OK", "WARN", "FAIL") and "sm_89" in gpu0["message"]
    assert data["ok"] is (out.returncode == 0)


def test_cli_doctor_bad_spec_is_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\npython: 3.8\ntorch: '1.13'\n")
    out = run_cli("doctor", str(spec), env=_env("no-driver"))
    assert out.returncode == 2 and "bad.yaml" in out.stderr
