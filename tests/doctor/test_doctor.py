"""``envbuild doctor``: checks on recorded machines, the spec verdict, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.doctor.checks import arch_verdict, can_run_cuda, cuda_support, parse_arch
from builder.doctor.matrix import MatrixKnowledge
from builder.doctor.report import DoctorRequest, run_doctor
from builder.doctor.spec import resolution_findings
from builder.host import HostFacts, probe_host
from builder.matrix.load import load_matrix
from builder.resolve.resolution import HostCompiler, Resolution, Toolchain
from tests.helpers import ENVSPECS, run_cli
from tests.helpers.smi import smi_env, smi_probe


@pytest.fixture(scope="module")
def know() -> MatrixKnowledge:
    """The doctor's knowledge from the real matrix: a matrix that fails to load fails these
    tests (it never reads as a skip)."""
    return MatrixKnowledge(load_matrix())


def _host(machine: str, monkeypatch: pytest.MonkeyPatch,
          gxx_bin: Path | None = None) -> HostFacts:
    """``machine``'s GPUs; with ``gxx_bin`` (a dir holding a fake g++) as the only PATH."""
    env = None if gxx_bin is None else {"PATH": str(gxx_bin)}
    return probe_host(probes=[smi_probe(monkeypatch, machine)], env=env)


def _fake_gxx(root: Path, version: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("g++", "gcc"):
        (root / name).write_text(f"#!/bin/sh\necho {version}\n")
        (root / name).chmod(0o755)
    return root


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


def test_driver_525_can_run(know: MatrixKnowledge) -> None:
    assert can_run_cuda("525.78.01", "12.0", "11.7", know)[0] == "OK"
    level, why = can_run_cuda("525.78.01", "12.0", "12.1", know)
    assert level == "WARN" and "minor-version compatibility" in why and "525.60.13" in why
    level, why = can_run_cuda("525.78.01", "12.0", "13.0", know)
    assert level == "FAIL" and "580.65.06" in why
    lines = cuda_support("525.78.01", "12.0", know).lines
    assert lines[0].startswith("CUDA <= 12.0: natively")
    assert any("12.x" in line and "PTX" in line for line in lines)
    assert any(line.startswith("CUDA 13.x: not runnable") for line in lines)


# --- the spec verdict on the recorded server -------------------------------------------------

def test_mask2former_cuda_11_1_verdict_on_the_4090(monkeypatch: pytest.MonkeyPatch,
                                                    know: MatrixKnowledge) -> None:
    host = _host("server-4090-a6000", monkeypatch)
    res = _resolution("1.9.0", "11.1", ("3.7", "5.0", "6.0", "7.0", "7.5", "8.0", "8.6"))
    by_topic = {f.topic: f for f in resolution_findings(res, host, know)}
    g0, g1 = by_topic["gpu 0"], by_topic["gpu 1"]
    assert g0.level == "WARN"
    assert "NVIDIA GeForce RTX 4090 (sm_89)" in g0.message
    assert "nvcc 11.1 cannot compile sm_89" in g0.message and "sm_86" in g0.message
    assert g0.fix and "sm_89" in g0.fix
    assert g1.level == "OK" and "native sm_86" in g1.message
    assert by_topic["driver"].level == "OK"


def test_driver_floor_and_compiler_failures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            know: MatrixKnowledge) -> None:
    host = _host("server-4090-a6000", monkeypatch, _fake_gxx(tmp_path / "gcc12", "12.2.0"))
    res = _resolution("2.6.0", "12.6", ("8.6", "8.9"), driver_min="560.28.03",
                      compiler="g++", gcc_max=10)
    found = {f.topic: f for f in resolution_findings(res, host, know)}
    assert found["driver"].level == "FAIL" and "560.28.03" in found["driver"].message
    assert found["compiler"].level == "FAIL" and "12.2.0" in found["compiler"].message
    older = _host("server-4090-a6000", monkeypatch, _fake_gxx(tmp_path / "gcc10", "10.4.0"))
    found = {f.topic: f for f in resolution_findings(res, older, know)}
    assert found["compiler"].level == "OK"
    ok = {f.topic: f for f in resolution_findings(
        _resolution("2.1.0", "12.1", ("8.6", "8.9")), host, know)}
    assert ok["driver"].level == "WARN" and "minor-version" in ok["driver"].message
    assert ok["gpu 0"].level == "OK" and ok["compiler"].level == "OK"


def test_h100_with_an_old_torch_fails(monkeypatch: pytest.MonkeyPatch,
                                      know: MatrixKnowledge) -> None:
    host = _host("h100", monkeypatch)
    res = _resolution("1.9.0", "11.1", ("3.7", "5.0", "6.0", "7.0", "7.5", "8.0", "8.6"))
    (gpu,) = [f for f in resolution_findings(res, host, know) if f.topic == "gpu 0"]
    assert gpu.level == "FAIL" and "no kernel image for sm_90" in gpu.message


# --- the machine report and the CLI ----------------------------------------------------------

def test_report_without_gpu_is_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_doctor(DoctorRequest(), probes=[smi_probe(monkeypatch, "no-driver")],
                        env={"PATH": "/usr/bin:/bin"})
    assert not report.failed and report.support is None
    assert report.findings[0].topic == "driver" and report.findings[0].level == "WARN"


def test_cli_doctor_without_gpu_exits_0() -> None:
    out = run_cli("doctor", env=smi_env("no-driver"))
    assert out.returncode == 0, out.stderr
    assert "no NVIDIA driver or GPU found" in out.stdout
    assert "couldn't communicate with the NVIDIA driver" in out.stdout


def test_cli_doctor_server_json() -> None:
    out = run_cli("doctor", "--json", env={**smi_env("server-4090-a6000"), "CUDA_HOME": ""})
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
        **smi_env("server-4090-a6000"), "CUDA_HOME": str(home),
        "PATH": f"{other}:/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    msgs = [f["message"] for f in json.loads(out.stdout)["findings"] if f["level"] == "WARN"]
    assert any("CUDA_HOME has CUDA 11.7 but the nvcc on PATH is 12.1" in m for m in msgs)


_M2F = """name: mask2former
python: "3.8"
torch: ">=1.9,<2.5"
torch_from: conda
cuda: {default: "11.7", allowed: ["11.1", "11.7", "11.8", "12.1"]}
channels: [pytorch, nvidia, conda-forge]
"""
# the RTX 4090 under each CUDA: nvcc before 11.8 cannot target sm_89, so the ops are built
# 8.6+PTX and the 4090 runs the sm_86 code (same major, binary compatible): a WARN, not a
# FAIL, and the verdict stays OK (exit 0).  From 11.8 on it gets native sm_89 code.
_NO_SM89 = ("NVIDIA GeForce RTX 4090 (sm_89), ops built for 8.6+PTX: no sm_89 code; runs the "
            "sm_86 code through same-major binary compatibility; nvcc {cuda} cannot compile "
            "sm_89 (newest: {newest})")
_VERDICTS = {
    "11.1": ("WARN", _NO_SM89.format(cuda="11.1", newest="sm_86"), "8.6+PTX"),
    "11.7": ("WARN", _NO_SM89.format(cuda="11.7", newest="sm_87"), "8.6+PTX"),
    "11.8": ("OK", "NVIDIA GeForce RTX 4090 (sm_89), ops built for 8.6;8.9+PTX: native sm_89 "
             "code", "8.6;8.9+PTX"),
}


@pytest.mark.parametrize("cuda", sorted(_VERDICTS))
def test_cli_doctor_with_spec_gives_the_verdict_for_the_4090(cuda: str, tmp_path: Path) -> None:
    level, message, arch = _VERDICTS[cuda]
    spec = tmp_path / "mask2former.yaml"
    spec.write_text(_M2F)
    out = run_cli("doctor", str(spec), "--cuda", cuda, "--json",
                  env=smi_env("server-4090-a6000"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] is True
    assert data["resolution"]["cuda"] == cuda and ";".join(data["resolution"]["arch_list"]) == arch
    by_topic = {f["topic"]: f for f in data["spec_findings"] if f["topic"] != "spec"}
    assert (by_topic["gpu 0"]["level"], by_topic["gpu 0"]["message"]) == (level, message)
    gpu1 = by_topic["gpu 1"]
    assert gpu1["level"] == "OK" and "native sm_86 code" in gpu1["message"]
    assert by_topic["driver"]["level"] == "OK"
    assert not [f for f in data["spec_findings"] if f["level"] == "FAIL"]


def test_cli_doctor_on_the_seed_spec_with_cuda_11_1_warns_about_sm_89() -> None:
    """The seed story's CUDA 11.1 (the upstream guide's) on the team's server, as printed."""
    out = run_cli("doctor", str(ENVSPECS / "mask2former.yaml"), "--cuda", "11.1",
                  env=smi_env("server-4090-a6000"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    [gpu0] = [line for line in lines if line.split()[1:3] == ["gpu", "0"]
              and "RTX 4090" in line and "ops built for" in line]
    assert gpu0.split()[0] == "WARN", gpu0
    assert gpu0.split(None, 3)[3] == _NO_SM89.format(cuda="11.1", newest="sm_86")
    [why] = [line for line in lines if line.startswith("WARN spec") and "is sm_89" in line]
    assert "CUDA 11.1's nvcc cannot target sm_89 (needs CUDA >= 11.8)" in why
    assert lines[-1].endswith(": OK")


def test_cli_doctor_with_spec_fails_on_the_h100_with_cuda_11_7(tmp_path: Path) -> None:
    spec = tmp_path / "mask2former.yaml"
    spec.write_text(_M2F)
    out = run_cli("doctor", str(spec), "--cuda", "11.7", "--json", env=smi_env("h100"))
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] is False and data["resolution"] is None
    [fail] = [f for f in data["spec_findings"] if f["level"] == "FAIL"]
    assert "is sm_90" in fail["message"] and "sm_90 needs CUDA >= 11.8" in fail["message"]
    assert "--cuda 11.8" in fail["fix"]


def test_cli_doctor_bad_spec_is_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\npython: 3.8\ntorch: '1.13'\n")
    out = run_cli("doctor", str(spec), env=smi_env("no-driver"))
    assert out.returncode == 2 and "bad.yaml" in out.stderr
