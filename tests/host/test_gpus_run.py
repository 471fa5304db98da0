"""``envbuild gpus`` and ``envbuild run`` end to end, against recorded nvidia-smi outputs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.host import DriverFacts
from builder.host.gpu_select import least_loaded, parse_selection, plan_run
from tests.helpers import run_cli
from tests.helpers.smi import SMI_DATA, smi_env, smi_probe

SHOW_ENV = ("import os; print(os.environ.get('CUDA_DEVICE_ORDER'), "
            "os.environ.get('CUDA_VISIBLE_DEVICES'))")


def _facts(machine: str | Path, monkeypatch: pytest.MonkeyPatch) -> DriverFacts:
    return smi_probe(monkeypatch, machine).probe()


def test_gpus_table_has_full_names_and_capabilities() -> None:
    out = run_cli("gpus", env=smi_env("server-4090-a6000"))
    assert out.returncode == 0, out.stderr
    assert "driver 525.78.01 (CUDA 12.0)" in out.stdout
    lines = out.stdout.splitlines()
    row0 = next(line for line in lines if line.startswith("0 "))
    row1 = next(line for line in lines if line.startswith("1 "))
    assert "NVIDIA GeForce RTX 4090" in row0 and " 8.9 " in row0 and "24564 MiB" in row0
    assert "NVIDIA RTX A6000" in row1 and " 8.6 " in row1 and "49140 MiB" in row1
    assert "..." not in out.stdout


def test_gpus_json_h100() -> None:
    out = run_cli("gpus", "--json", env=smi_env("h100"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["driver_version"] == "535.129.03" and data["cuda_version"] == "12.2"
    (gpu,) = data["gpus"]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert (gpu["compute_capability"], gpu["sm"], gpu["memory_total_mib"]) == ("9.0", "sm_90",
                                                                              81559)


def test_gpus_without_driver_says_so() -> None:
    out = run_cli("gpus", env=smi_env("no-driver"))
    assert out.returncode == 0
    assert "no GPUs" in out.stdout and "NVIDIA driver" in out.stdout


def test_run_auto_picks_the_idle_gpu() -> None:
    # On the recorded server the A6000 (GPU 1) runs a 12.9 GiB job at 97%.
    out = run_cli("run", "--gpus", "auto", "--", sys.executable, "-c", SHOW_ENV,
                  env=smi_env("server-4090-a6000"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PCI_BUS_ID 0"
    assert "GPU 0 NVIDIA GeForce RTX 4090" in out.stderr and "-> cuda:0" in out.stderr


def test_run_auto_follows_the_load(tmp_path: Path) -> None:
    # Same server, but now the 4090 is the busy one (edited copy of the recording).
    machine = tmp_path / "busy-4090"
    shutil.copytree(SMI_DATA / "server-4090-a6000", machine)
    (machine / "query-gpu.csv").write_text(
        "0, 00000000:4E:00.0, NVIDIA GeForce RTX 4090, GPU-a, 8.9, 24564, 23011, 100, 525.78.01\n"
        "1, 00000000:CA:00.0, NVIDIA RTX A6000, GPU-b, 8.6, 49140, 3, 0, 525.78.01\n")
    (machine / "compute-apps.csv").write_text("00000000:4E:00.0, 4242, 23000\n")
    out = run_cli("run", "--", sys.executable, "-c", SHOW_ENV, env=smi_env(machine))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PCI_BUS_ID 1"
    assert "GPU 1 NVIDIA RTX A6000" in out.stderr and "-> cuda:0" in out.stderr


def test_run_explicit_list_maps_in_order() -> None:
    out = run_cli("run", "--gpus", "1,0", "--", sys.executable, "-c", SHOW_ENV,
                  env=smi_env("server-4090-a6000"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PCI_BUS_ID 1,0"
    assert "GPU 1 NVIDIA RTX A6000" in out.stderr and "-> cuda:0" in out.stderr
    assert "GPU 0 NVIDIA GeForce RTX 4090" in out.stderr and "-> cuda:1" in out.stderr


def test_run_passes_arguments_and_exit_code_through() -> None:
    out = run_cli("run", "--gpus", "0", "--", sys.executable, "-c",
                  "import sys; print(sys.argv[1:]); sys.exit(3)", "--num-gpus", "1",
                  env=smi_env("server-4090-a6000"))
    assert out.returncode == 3
    assert out.stdout.strip() == "['--num-gpus', '1']"


def test_run_bad_index_lists_the_valid_ones() -> None:
    out = run_cli("run", "--gpus", "2", "--", "true", env=smi_env("server-4090-a6000"))
    assert out.returncode == 2
    assert "'2' is not a GPU index" in out.stderr
    assert "0 (NVIDIA GeForce RTX 4090), 1 (NVIDIA RTX A6000)" in out.stderr


def test_run_without_gpu_auto_still_runs() -> None:
    out = run_cli("run", "--", sys.executable, "-c", SHOW_ENV, env={
        **smi_env("no-driver"), "CUDA_VISIBLE_DEVICES": "", "CUDA_DEVICE_ORDER": ""})
    assert out.returncode == 0, out.stderr
    assert "no GPU found" in out.stderr


def test_run_without_gpu_explicit_index_is_usage_error() -> None:
    out = run_cli("run", "--gpus", "0", "--", "true", env=smi_env("no-driver"))
    assert out.returncode == 2 and "no usable GPU" in out.stderr


def test_run_unknown_command_is_usage_error() -> None:
    out = run_cli("run", "--gpus", "0", "--", "no-such-command-xyz", env=smi_env("h100"))
    assert out.returncode == 2 and "no-such-command-xyz" in out.stderr


def test_selection_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = _facts("server-4090-a6000", monkeypatch)
    assert least_loaded(facts.gpus).index == 0
    assert [g.index for g in parse_selection("all", facts)] == [0, 1]
    with pytest.raises(UsageError, match="listed twice"):
        parse_selection("0,0", facts)
    with pytest.raises(UsageError, match="not a GPU index"):
        parse_selection("x", facts)
    plan = plan_run(["prog"], "1", facts, {"CUDA_VISIBLE_DEVICES": "0,1", "KEEP": "1"})
    assert plan.env["CUDA_VISIBLE_DEVICES"] == "1" and plan.env["KEEP"] == "1"
    assert plan.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
