"""The resolver on real facts (compat-facts.md), through the API and the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.errors import ConflictError, SpecError, UsageError
from builder.resolve.resolver import ResolveRequest, resolve
from builder.spec.envspec import LoadedSpec, load_spec
from tests.helpers import ENVSPECS, run_cli

M2F = ENVSPECS / "mask2former.yaml"
MODERN = ENVSPECS / "mask2former-modern.yaml"
RTX4090, A6000, H100 = "NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000", "NVIDIA H100 80GB HBM3"


@pytest.fixture(scope="module")
def m2f() -> LoadedSpec:
    return load_spec(M2F)


def _spec(tmp_path: Path, text: str) -> LoadedSpec:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return load_spec(path)


def test_cuda_11_7_is_the_seed_stack(m2f: LoadedSpec) -> None:
    res = resolve(m2f, ResolveRequest(cuda="11.7"))
    assert (res.torch, res.torchvision, res.python, res.cuda) == ("1.13.1", "0.14.1", "3.8",
                                                                  "11.7")
    assert "pytorch-cuda 11.7.*" in res.conda
    assert "pytorch 1.13.1 py3.8_cuda11.7_*" in res.conda
    assert "torchvision 0.14.1" in res.conda and "ninja" in res.conda
    assert res.host_compiler.name == "gxx" and res.host_compiler.max_major == 11
    assert res.host_compiler.spec == "gxx_linux-64 11.*"
    assert res.toolchain is not None and res.toolchain.cxx_std == "c++14"
    assert res.toolchain.nvcc_spec == "nvidia/label/cuda-11.7.1::cuda-nvcc 11.7.*"
    assert res.toolchain.nvcc_fallback_specs[0] == "nvidia/label/cuda-11.8.0::cuda-nvcc 11.8.*"
    # label channels last, or strict priority hides nvidia's cuda-cudart 11.7
    assert res.channels[:3] == ("pytorch", "nvidia", "conda-forge")
    assert all("/label/" in c for c in res.channels[3:]) and len(res.channels) == 5
    assert res.virtual_packages["__cuda"] == "11.7"
    assert res.virtual_packages["__glibc"] == "2.17"
    assert res.driver_min == "450.80.02"
    assert "setuptools<82" in res.pip and "Pillow<10" not in res.pip
    assert res.matrix_version.startswith("m1-")
    assert any("newest" in line and "1.13.1" in line for line in res.explain)
    # with no GPU, the pytorch channel build's own list
    assert res.arch_list == ("3.7+PTX", "5.0", "6.0", "6.1", "7.0", "7.5", "8.0", "8.6")


def test_default_cuda_is_the_specs(m2f: LoadedSpec) -> None:
    assert resolve(m2f, ResolveRequest()).cuda == "11.7"


def test_pytorch_channel_picks_2_0_for_cu117_without_the_exclusion(tmp_path: Path) -> None:
    spec = _spec(tmp_path, 'name: t\npython: "3.8"\ntorch: ">=1.9,<2.5"\n')
    res = resolve(spec, ResolveRequest(cuda="11.7"))
    assert (res.torch, res.torchvision, res.toolchain.cxx_std) == ("2.0.1", "0.15.2", "c++17")


def test_rtx4090_on_cuda_11_1_explained(m2f: LoadedSpec) -> None:
    res = resolve(m2f, ResolveRequest(cuda="11.1", gpus=(RTX4090, A6000)))
    assert res.arch_list == ("8.6+PTX",)
    warning = next(w for w in res.warnings if "sm_89" in w)
    assert "CUDA >= 11.8" in warning and "8.6+PTX" in warning
    assert "cudatoolkit 11.1.*" in res.conda
    assert res.host_compiler.max_major == 10
    assert res.torch in {"1.9.1", "1.10.2", "1.11.0"}  # pytorch channel cu111 builds


def test_rtx4090_on_cuda_11_8_gets_native_code(m2f: LoadedSpec) -> None:
    res = resolve(m2f, ResolveRequest(cuda="11.8", gpus=(RTX4090, A6000)))
    assert res.arch_list == ("8.6", "8.9+PTX")
    assert not [w for w in res.warnings if "sm_89" in w]


def test_h100_on_cuda_11_7_conflicts(m2f: LoadedSpec) -> None:
    with pytest.raises(ConflictError) as err:
        resolve(m2f, ResolveRequest(cuda="11.7", gpus=(H100,)))
    assert err.value.constraint == "sm_90 needs CUDA >= 11.8"
    assert err.value.exit_code == 1
    assert any(a.startswith("--cuda 11.8") and "9.0+PTX" in a for a in err.value.alternatives)
    assert not any(a.startswith("--cuda 11.1") for a in err.value.alternatives)


def test_driver_below_floor_names_minimum(m2f: LoadedSpec) -> None:
    with pytest.raises(ConflictError) as err:
        resolve(m2f, ResolveRequest(cuda="11.7", driver="440.33"))
    assert "450.80.02" in err.value.message and "450.80.02" in err.value.constraint
    with pytest.raises(ConflictError, match="525.60.13"):
        resolve(m2f, ResolveRequest(cuda="12.1", driver="520.61.05"))


def test_driver_minor_compat_warns(m2f: LoadedSpec) -> None:
    # the team's server: driver reports CUDA 12.0 (525.x); 12.1 wants 530.30.02
    res = resolve(m2f, ResolveRequest(cuda="12.1", driver="525.60.13"))
    assert any("530.30.02" in w and "minor-version" in w for w in res.warnings)
    assert not resolve(m2f, ResolveRequest(cuda="11.7", driver="525.60.13")).warnings


def test_no_torch_for_python_lists_what_works(tmp_path: Path) -> None:
    spec = _spec(tmp_path, 'name: t\npython: "3.12"\ntorch: ">=1.9,<2.2"\n'
                           'cuda: {default: "11.8", allowed: ["11.7", "11.8"]}\n')
    with pytest.raises(ConflictError) as err:
        resolve(spec, ResolveRequest())
    assert "python 3.12" in err.value.message
    # the way out lies outside the spec's range: a newer torch with a 3.12 build for 11.8
    [alt] = err.value.alternatives
    assert alt.startswith("outside the range: torch 2.") and alt.endswith(
        " has CUDA 11.8 for python 3.12"), alt


def test_cuda_11_3_trap_is_named(tmp_path: Path) -> None:
    spec = _spec(tmp_path, 'name: t\npython: "3.8"\ntorch: ">=1.9,<1.10"\n')
    with pytest.raises(ConflictError) as err:
        resolve(spec, ResolveRequest(cuda="11.3"))
    assert "cuda11.1" in err.value.message and "CPU build" in err.value.message
    assert any("--cuda 11.1" in a for a in err.value.alternatives)


def test_bad_requests_are_exit_2(m2f: LoadedSpec) -> None:
    with pytest.raises(SpecError) as err:
        resolve(m2f, ResolveRequest(cuda="12.4"))
    assert err.value.location == f"{M2F}:13" and err.value.exit_code == 2
    with pytest.raises(UsageError, match="unknown GPU name 'Voodoo") as gpu_err:
        resolve(m2f, ResolveRequest(gpus=("Voodoo 5 6000",)))
    assert "envbuild matrix --gpu ''" in (gpu_err.value.hint or "")
    with pytest.raises(UsageError, match="unknown torch version"):
        resolve(m2f, ResolveRequest(torch="1.99.0"))
    with pytest.raises(SpecError, match="outside"):
        resolve(m2f, ResolveRequest(torch="2.5.1"))
    with pytest.raises(SpecError, match="torch_from: pypi"):
        resolve(m2f, ResolveRequest(cuda="cpu"))


def test_modern_spec_applies_the_fixup() -> None:
    spec = load_spec(MODERN)
    res = resolve(spec, ResolveRequest(gpus=(RTX4090,)))
    assert res.cuda == "12.6" and res.torch == "2.14.1" and res.python == "3.11"
    msda = next(op for op in res.ops if op.name == "MultiScaleDeformableAttention")
    assert msda.fixups == ("dispatch-scalar-type",)
    assert res.pip[:2] == ("torch==2.14.1+cu126", "torchvision==0.29.1+cu126")
    assert res.pip_index_urls == ("https://download.pytorch.org/whl/cu126",)
    assert res.virtual_packages["__glibc"] == "2.28"
    assert res.toolchain.nvcc_spec == "conda-forge::cuda-nvcc 12.6.*"
    assert res.toolchain.cxx_std == "c++20" and res.host_compiler.min_major == 10
    assert res.arch_list == ("8.9+PTX",)


def test_matrix_chooses_fixup_without_the_spec_naming_it(tmp_path: Path) -> None:
    text = MODERN.read_text().replace(",\n     fixups: [dispatch-scalar-type]}", "}")
    assert "fixups" not in text
    res = resolve(_spec(tmp_path, text), ResolveRequest(cuda="13.0"))
    msda = next(op for op in res.ops if op.name == "MultiScaleDeformableAttention")
    assert msda.fixups == ("dispatch-scalar-type",)
    assert res.pip[:2] == ("torch==2.14.1", "torchvision==0.29.1")  # the PyPI default wheel
    assert res.pip_index_urls == ()


def test_skip_fixups_switches_off_what_the_matrix_chose(tmp_path: Path) -> None:
    text = MODERN.read_text().replace(",\n     fixups: [dispatch-scalar-type]}",
                                      ",\n     skip_fixups: [dispatch-scalar-type]}")
    assert "skip_fixups" in text
    res = resolve(_spec(tmp_path, text), ResolveRequest(cuda="13.0"))
    msda = next(op for op in res.ops if op.name == "MultiScaleDeformableAttention")
    assert msda.fixups == ()


@pytest.mark.parametrize(("line", "message"), [
    ("skip_fixups: [no-such]", "unknown fixup 'no-such'"),
    ("fixups: [dispatch-scalar-type], skip_fixups: [dispatch-scalar-type]",
     "both in fixups and skip_fixups"),
])
def test_bad_skip_fixups_are_located(tmp_path: Path, line: str, message: str) -> None:
    text = MODERN.read_text().replace("fixups: [dispatch-scalar-type]}", line + "}")
    with pytest.raises(SpecError, match=message) as err:
        resolve(_spec(tmp_path, text), ResolveRequest(cuda="13.0"))
    assert "spec.yaml:" in str(err.value.location)


def test_conda_provider_after_2_5_is_conda_forge(tmp_path: Path) -> None:
    spec = _spec(tmp_path, 'name: t\npython: "3.11"\ntorch: ">=2.6,<2.8"\n')
    res = resolve(spec, ResolveRequest(cuda="12.6"))
    assert res.torch == "2.7.1"
    assert "pytorch 2.7.1 cuda126_*" in res.conda and "cuda-version 12.6.*" in res.conda
    assert res.channels == ("conda-forge", "nvidia/label/cuda-12.6.3")  # nvcc fallback


def test_cpu_only_pypi(tmp_path: Path) -> None:
    spec = _spec(tmp_path, 'name: t\npython: "3.11"\ntorch: ">=2.13,<2.14"\n'
                           "torch_from: pypi\n")
    res = resolve(spec, ResolveRequest(cuda="cpu"))
    assert (res.torch, res.cuda, res.toolchain, res.arch_list) == ("2.13.0", "cpu", None, ())
    assert res.pip[:2] == ("torch==2.13.0+cpu", "torchvision==0.28.0+cpu")
    assert res.pip_index_urls == ("https://download.pytorch.org/whl/cpu",)
    assert "__cuda" not in res.virtual_packages


def test_v06_detectron2_gets_pillow_pin(tmp_path: Path) -> None:
    spec = _spec(tmp_path, 'name: t\npython: "3.8"\ntorch: "1.10.2"\n'
                           "pip: ['git+https://github.com/facebookresearch/detectron2@d1e04565']\n")
    res = resolve(spec, ResolveRequest(cuda="11.3"))
    assert "Pillow<10" in res.pip and "setuptools<82" in res.pip


def test_cli_json_contract() -> None:
    proc = run_cli("resolve", str(M2F), "--cuda", "11.7", "--gpu", RTX4090, "--gpu", A6000,
                   "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in ("python", "torch", "torchvision", "cuda", "arch_list", "host_compiler",
                "conda", "pip", "warnings"):
        assert key in data
    assert data["host_compiler"]["name"] == "gxx" and data["host_compiler"]["max_major"] == 11
    assert data["arch_list"] == ["8.6+PTX"] and data["torch"] == "1.13.1"
    assert isinstance(data["warnings"], list) and data["warnings"]


def test_cli_conflict_and_human_output() -> None:
    proc = run_cli("resolve", str(M2F), "--cuda", "11.7", "--gpu", H100)
    assert proc.returncode == 1
    assert "sm_90 needs CUDA >= 11.8" in proc.stderr and "--cuda 11.8" in proc.stderr
    human = run_cli("resolve", str(M2F), "--cuda", "11.1", "--gpu", RTX4090)
    assert human.returncode == 0
    assert "8.6+PTX" in human.stdout and "sm_89" in human.stdout and "why:" in human.stdout
    drv = run_cli("resolve", str(M2F), "--driver", "418.67")
    assert drv.returncode == 1 and "450.80.02" in drv.stderr


def test_cli_memo_follows_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text('name: t\npython: "3.8"\ntorch: ">=1.9,<2.5"\n', encoding="utf-8")
    first = run_cli("resolve", str(spec), "--cuda", "11.7", "--json")
    again = run_cli("resolve", str(spec), "--cuda", "11.7", "--json")
    assert first.returncode == again.returncode == 0
    assert json.loads(first.stdout) == json.loads(again.stdout)
    assert json.loads(first.stdout)["torch"] == "2.0.1"
    spec.write_text('name: t\npython: "3.8"\ntorch: ">=1.9,<2.0"\n', encoding="utf-8")
    changed = run_cli("resolve", str(spec), "--cuda", "11.7", "--json")
    assert json.loads(changed.stdout)["torch"] == "1.13.1"
    spec.write_text('name: t\npython: "3.8"\ntorch: ">=1.9,<2.0"\nbogus: 1\n', encoding="utf-8")
    for _ in range(2):  # failures are never memoized
        bad = run_cli("resolve", str(spec), "--cuda", "11.7", "--json")
        assert bad.returncode == 2 and f"{spec}:4:" in bad.stderr
