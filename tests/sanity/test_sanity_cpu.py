"""The CPU check every env gets (so ``make demo`` proves something without a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.sanity import RUN_CHECKS, load_run_checks

torch = pytest.importorskip("torch")


def _rows(env: dict[str, str]) -> dict[str, dict[str, object]]:
    done = subprocess.run([sys.executable, str(RUN_CHECKS)], capture_output=True, text=True,
                          env=env, timeout=600, check=True)
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return {row["check"]: row for row in data["checks"]}


def test_cpu_check_passes_and_gpu_checks_skip_without_a_gpu() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    rows = _rows(env)
    cpu = rows["torch.cpu-sampling"]
    assert cpu["status"] == "PASS", cpu
    assert cpu["device"] == "cpu" and "max abs error" in str(cpu["reason"])
    assert rows["torch.matmul"]["status"] == "SKIPPED"
    assert rows["torch.matmul"]["reason"]


def test_cpu_check_fails_when_torch_samples_wrongly(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = load_run_checks()
    real = torch.nn.functional.grid_sample

    def off_by_a_little(*args: object, **kwargs: object) -> object:
        return real(*args, **kwargs) * (1 + 1e-6)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.nn.functional, "grid_sample", off_by_a_little)
    row = checks.check_torch([], "no GPU in this test")[0]
    assert row["check"] == "torch.cpu-sampling"
    assert row["status"] == "FAIL", row
