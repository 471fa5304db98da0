"""Messages that lead somewhere: bad input is exit 2 with ``path:line`` and a next step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.doctor.spec import env_findings
from builder.errors import SpecError
from builder.host import HostFacts, probe_host
from builder.resolve.resolver import ResolveRequest, resolve
from builder.spec.envspec import load_spec
from tests.helpers import REPO, run_cli
from tests.helpers.smi import smi_probe

BASE = 'name: x\npython: "3.10"\ntorch: ">=1.9"\n'


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


def _spec_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, text))
    return info.value.message


def test_unquoted_python_hint_keeps_the_written_digits(tmp_path: Path) -> None:
    msg = _spec_error(tmp_path, 'name: x\npython: 3.10\ntorch: ">=1.9"\n')
    assert msg.startswith(f"{tmp_path / 'x.yaml'}:2: python:")
    assert 'e.g. "3.10"' in msg
    assert '"3.1"' not in msg


def test_list_and_mapping_mixups_say_what_was_expected(tmp_path: Path) -> None:
    assert "cuda: expected a mapping, got a list" in _spec_error(
        tmp_path, BASE + 'cuda: ["11.7"]\n')
    assert "conda: expected a list, got a mapping" in _spec_error(
        tmp_path, BASE + "conda: {ninja: 1}\n")
    assert "valid tuple" not in _spec_error(tmp_path, BASE + "pip: 5\n")


def test_every_problem_is_listed_with_its_line(tmp_path: Path) -> None:
    msg = _spec_error(tmp_path, BASE + "chanels: [a]\npip: 5\n")
    lines = msg.splitlines()
    assert "more problem" not in msg
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'x.yaml'}:4: unknown key 'chanels'")
    assert "did you mean 'channels'?" in lines[0]
    assert lines[1].startswith(f"{tmp_path / 'x.yaml'}:5: pip: expected a list")


def test_nested_key_typo_suggests_the_key(tmp_path: Path) -> None:
    msg = _spec_error(tmp_path, BASE + "sources:\n  s: {path: .}\n"
                      "ops:\n  - {name: a, source: s, pth: x}\n")
    assert ":7: unknown key 'ops.0.pth'; did you mean 'path'?" in msg


def test_driver_that_is_not_a_version_is_usage_error() -> None:
    out = run_cli("resolve", "envspecs/mask2former.yaml", "--driver", "banana")
    assert out.returncode == 2, out.stderr
    assert "not a driver version" in out.stderr
    assert "too old" not in out.stderr


def test_unknown_command_and_gpu_get_did_you_mean() -> None:
    out = run_cli("resolv")
    assert out.returncode == 2
    assert "did you mean 'resolve'?" in out.stderr
    out = run_cli("resolve", "envspecs/mask2former.yaml", "--gpu", "RTX 4900")
    assert out.returncode == 2
    assert "did you mean 'rtx 4090'" in out.stderr


def test_matrix_gpu_shows_only_that_gpu() -> None:
    out = run_cli("matrix", "--gpu", "NVIDIA RTX A6000")
    assert out.returncode == 0, out.stderr
    assert "compute capability 8.6" in out.stdout
    assert "torch releases" not in out.stdout
    assert "source fixups" not in out.stdout
    cudas = [line.split()[0] for line in out.stdout.splitlines() if line[:2] in ("10", "11",
                                                                              "12", "13")]
    assert "11.1" in cudas and "11.0" not in cudas  # sm_86 arrived with CUDA 11.1


def test_matrix_unknown_versions_are_usage_errors() -> None:
    out = run_cli("matrix", "--torch", "9.9")
    assert out.returncode == 2
    assert "no torch release" in out.stderr
    out = run_cli("matrix", "--cuda", "11.9")
    assert out.returncode == 2
    assert "did you mean" in out.stderr


def test_empty_lockfile_is_a_located_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "x.conda-lock.yml"
    empty.write_text("")
    out = run_cli("install", str(empty), "--prefix", str(tmp_path / "p"))
    assert out.returncode == 2, out.stderr
    assert f"{empty}:1: the lockfile is empty" in out.stderr
    assert "AttributeError" not in out.stderr
    empty.write_text("[1, 2]\n")
    out = run_cli("install", str(empty), "--prefix", str(tmp_path / "p"))
    assert out.returncode == 2
    assert "must be a mapping" in out.stderr
    assert not (tmp_path / "p").exists()


def test_lock_check_hint_keeps_every_option(tmp_path: Path) -> None:
    snapshot = REPO.parent / "shared" / "channels-snapshot"
    if not (snapshot / "channels.json").is_file():
        pytest.skip(f"no channel snapshot at {snapshot}")
    stale = tmp_path / "stale.conda-lock.yml"
    out = run_cli("lock", "envspecs/mask2former.yaml", "--cuda", "11.7", "--check",
                  "--channel-snapshot", str(snapshot), "-o", str(stale))
    assert out.returncode == 1, out.stderr
    assert f"--channel-snapshot {snapshot}" in out.stderr
    assert f"-o {stale}" in out.stderr
    assert "--check" not in out.stderr.split("hint:")[1]


def test_stale_env_lockfile_hint_names_the_lock_command(tmp_path: Path) -> None:
    from builder.env.stages import Context, EnvRequest, relock_command

    spec = _spec(tmp_path, BASE)
    req = EnvRequest(spec=spec, channels=("x=file:///mirror",))
    ctx = Context(req, load_spec(spec), None, "cpu")
    lockfile = tmp_path / "demo-cpu.conda-lock.yml"
    assert relock_command(ctx, lockfile) == (
        f"envbuild lock {spec} --cuda cpu -o {lockfile} --channel x=file:///mirror")


def _fake_prefix(root: Path, version: str, cuda: str | None, has_op: bool) -> Path:
    """A prefix whose python answers both doctor probes with one JSON line."""
    (root / "bin").mkdir(parents=True)
    cuda_json = f'"{cuda}"' if cuda else "null"
    line = (f'{{"version": "{version}", "cuda": {cuda_json}, "arch_list": [], '
            f'"MultiScaleDeformableAttention": {"true" if has_op else "false"}}}')
    python = root / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho '{line}'\n")
    python.chmod(0o755)
    return root


def _host_with(prefix: Path, monkeypatch: pytest.MonkeyPatch) -> HostFacts:
    host = probe_host(probes=[smi_probe(monkeypatch, "no-driver")],
                      env=dict(os.environ), prefix=prefix)
    assert host.torch is not None and host.torch.version
    return host


def test_doctor_compares_the_env_with_the_spec(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    spec = REPO / "envspecs" / "mask2former.yaml"
    res = resolve(load_spec(spec), ResolveRequest(cuda="11.7"))
    wrong = _host_with(_fake_prefix(tmp_path / "wrong", "2.13.0+cpu", None, False),
                       monkeypatch)
    found = env_findings(res, wrong, spec)
    text = "\n".join(f.message for f in found)
    assert all(f.level == "FAIL" for f in found)
    assert "torch 2.13.0+cpu" in text and res.torch in text
    assert "CPU only" in text and "CUDA 11.7" in text
    assert "MultiScaleDeformableAttention" in text
    right_dir = tmp_path / "right"
    right = _host_with(_fake_prefix(right_dir, f"{res.torch}+cu117", "11.7", True), monkeypatch)
    found = env_findings(res, right, spec)
    # torch and CUDA match; the fake prefix has only one of the spec's ops
    assert [f.message.split(":")[0] for f in found] == [f"op(s) not installed in {right_dir}"]
    assert "MultiScaleDeformableAttention" not in found[0].message
