"""Lock faults: unsatisfiable specs, unreachable channels, credentials, solver registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import ConflictError, UsageError
from builder.lock import LockRequest, lock
from builder.lock.channels import ChannelUnavailable, plan_channels
from builder.lock.conda_layer import SOLVERS, get_solver
from builder.util.redact import redact
from tests.helpers import SNAPSHOT, snapshot_missing_reason
from tests.helpers.lock import cu117_resolution, mini_spec

needs_snapshot = pytest.mark.skipif(snapshot_missing_reason() is not None,
                                    reason=snapshot_missing_reason() or "")


@needs_snapshot
def test_unsatisfiable_explained_in_spec_terms(tmp_path: Path) -> None:
    spec = mini_spec(tmp_path)
    res = cu117_resolution(conda_extra=("ninja >=99",))
    req = LockRequest(spec=spec, resolution=res, output=tmp_path / "x.conda-lock.yml",
                      channel_snapshot=SNAPSHOT)
    with pytest.raises(ConflictError) as info:
        lock(req)
    err = info.value
    assert err.exit_code == 1
    assert "No candidates were found for ninja >=99" in err.message
    assert f"conda[0] at {spec.path}:" in err.message  # the spec key and its line
    assert err.hint is not None and "ninja: the channels have" in err.hint
    assert "1.11" in err.hint  # a version that would work
    assert not (tmp_path / "x.conda-lock.yml").exists()


@needs_snapshot
def test_unsatisfiable_build_names_working_versions(tmp_path: Path) -> None:
    res = cu117_resolution().model_copy(update={"conda": (
        "python 3.8.*", "pytorch 2.4.1 py3.8_cuda11.8_*", "pytorch-cuda 11.8.*")})
    req = LockRequest(spec=mini_spec(), resolution=res, output=tmp_path / "x.yml",
                      channel_snapshot=SNAPSHOT)
    with pytest.raises(ConflictError) as info:
        lock(req)
    assert "'torch:' at" in info.value.message
    assert info.value.hint is not None
    assert "with a py3.8_cuda11.8_* build: 2.0.0, 2.0.1, 2.1.0" in info.value.hint


def test_cli_unsatisfiable_exit_1(tmp_path: Path) -> None:
    """Through the real command: a conflict is exit 1 with an explanation (no traceback)."""
    from tests.helpers import run_cli

    if snapshot_missing_reason():
        pytest.skip(snapshot_missing_reason() or "")
    spec = tmp_path / "envspecs" / "bad.yaml"
    spec.parent.mkdir()
    spec.write_text('name: bad\npython: "3.8"\ntorch: "1.13.1"\n'
                    'cuda: {default: "11.7"}\nchannels: [pytorch, nvidia, conda-forge]\n'
                    'conda: ["cmake >=99"]\n')
    out = run_cli("lock", str(spec), "--channel-snapshot", str(SNAPSHOT), "-o",
                  str(tmp_path / "bad.conda-lock.yml"))
    assert out.returncode == 1, out.stderr
    assert "No candidates were found for cmake >=99" in out.stderr
    assert f"conda[0] at {spec}:6" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "bad.conda-lock.yml").exists()


def test_unreachable_channel_named_with_hint(tmp_path: Path) -> None:
    """Live channels on a machine that cannot reach them: exit 1 naming the channel."""
    res = cu117_resolution(channels=("conda-forge",), fallbacks=())
    res = res.model_copy(update={"toolchain": None, "conda": ("python 3.8.*",)})
    req = LockRequest(spec=mini_spec(), resolution=res, output=tmp_path / "x.yml",
                      channels=("conda-forge=https://user:s3cret@127.0.0.1:9/conda-forge",))
    with pytest.raises(ChannelUnavailable) as info:
        lock(req)
    text = str(info.value) + (info.value.hint or "")
    assert "127.0.0.1:9" in text and "--channel-snapshot" in text
    assert "s3cret" not in text
    assert not (tmp_path / "x.yml").exists()


@needs_snapshot
def test_snapshot_without_a_needed_channel(tmp_path: Path) -> None:
    res = cu117_resolution(channels=("pytorch", "bioconda"))
    req = LockRequest(spec=mini_spec(), resolution=res, output=tmp_path / "x.yml",
                      channel_snapshot=SNAPSHOT)
    with pytest.raises(ChannelUnavailable, match="'bioconda' is not in the snapshot"):
        lock(req)


@needs_snapshot
def test_credentials_never_reach_the_lockfile(tmp_path: Path) -> None:
    """A file:// mirror of the snapshot's conda-forge behind a token-bearing URL alias."""
    import shutil

    mirror = tmp_path / "mirror" / "conda-forge"
    for subdir in ("linux-64", "noarch"):
        (mirror / subdir).mkdir(parents=True)
        shutil.copy(SNAPSHOT / "conda-forge" / subdir / "repodata.json", mirror / subdir)
    res = cu117_resolution(channels=("conda-forge",)).model_copy(
        update={"toolchain": None, "conda": ("python 3.8.*", "ninja")})
    url = "https://user:tok3n@mirror.example/t/abc123/conda-forge"
    assert redact(url) == "https://mirror.example/conda-forge"
    plan = plan_channels(["conda-forge"], channel_args=[f"conda-forge={url}"])
    assert plan.entries[0].url == "https://mirror.example/conda-forge"
    assert plan.entries[0].fetch_url == url
    out = tmp_path / "m.conda-lock.yml"
    req = LockRequest(spec=mini_spec(), resolution=res, output=out,
                      channels=(f"conda-forge={mirror.as_uri()}",))
    lock(req)
    text = out.read_text()
    assert f"{mirror.as_uri()}/linux-64/python-3.8" in text


def test_redact_variants() -> None:
    assert redact("https://u:p@h/c") == "https://h/c"
    assert redact("see https://tok@h/t/xyz/c/linux-64 now") == "see https://h/c/linux-64 now"
    assert redact("https://h/c?token=abc&x=1") == "https://h/c?token=***&x=1"
    assert redact("https://conda.anaconda.org/conda-forge") == \
        "https://conda.anaconda.org/conda-forge"


def test_channel_arguments() -> None:
    plan = plan_channels(["pytorch", "conda-forge"], channel_args=["file:///srv/chan"])
    assert [e.url for e in plan.entries] == ["file:///srv/chan"] and plan.override_all
    with pytest.raises(UsageError):
        plan_channels(["pytorch"], channel_args=["pytorch=https://m/p", "https://m/x"])
    with pytest.raises(UsageError, match="unknown channel"):
        plan_channels(["pytorch"], channel_args=["bioconda=https://m/b"])
    with pytest.raises(UsageError, match="cannot be combined"):
        plan_channels(["pytorch"], snapshot=Path("/x"), channel_args=["https://m/x"])


def test_solver_registry() -> None:
    assert set(SOLVERS) == {"rattler", "conda-lock"}
    assert get_solver("rattler").name == "rattler"
    with pytest.raises(UsageError, match="unknown solver"):
        get_solver("pip")


def test_conda_lock_solver_when_available(tmp_path: Path) -> None:
    from builder.lock.solve_condalock import CondaLockSolver

    reason = CondaLockSolver().unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    res = cu117_resolution(channels=("conda-forge",)).model_copy(
        update={"toolchain": None, "conda": ("python 3.8.*",)})
    req = LockRequest(spec=mini_spec(), resolution=res, output=tmp_path / "c.yml",
                      solver="conda-lock")
    result = lock(req)
    assert result.conda_count > 0


@needs_snapshot
def test_conda_lock_records_reader_roundtrip(tmp_path: Path) -> None:
    """The conda-lock solver reads conda-lock lockfiles back into records (our own file here)."""
    from builder.lock.solve_condalock import records_from_lockfile

    res = cu117_resolution()
    req = LockRequest(spec=mini_spec(), resolution=res, output=tmp_path / "r.conda-lock.yml",
                      channel_snapshot=SNAPSHOT)
    result = lock(req)
    records = records_from_lockfile(req.output, "linux-64")
    assert len(records) == result.conda_count
    torch = next(r for r in records if r.name == "pytorch")
    assert torch.channel == "https://conda.anaconda.org/pytorch" and torch.subdir == "linux-64"
