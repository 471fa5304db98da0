"""The lock stage against the real channel snapshot (offline): records, format, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.lock import LockRequest, check, default_lockfile_path, lock
from builder.lock.lockfile import envbuild_metadata, read_lockfile
from tests.helpers import SNAPSHOT, snapshot_missing_reason
from tests.helpers.lock import cu117_resolution, mini_spec

pytestmark = pytest.mark.skipif(snapshot_missing_reason() is not None,
                                reason=snapshot_missing_reason() or "")


def _req(tmp_path: Path, **kw: object) -> LockRequest:
    spec = kw.pop("spec", None) or mini_spec()
    res = kw.pop("resolution", None) or cu117_resolution()
    out = kw.pop("output", None) or tmp_path / "lockfiles" / "m2f-mini-cu117.conda-lock.yml"
    return LockRequest(spec=spec, resolution=res, output=out,  # type: ignore[arg-type]
                       channel_snapshot=SNAPSHOT, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> tuple[LockRequest, Path]:
    tmp = tmp_path_factory.mktemp("lock")
    req = _req(tmp)
    lock(req)
    return req, req.output


def test_cu117_pins_pytorch_1131_cuda117_with_hashes(locked: tuple[LockRequest, Path]) -> None:
    _, path = locked
    lf = read_lockfile(path)
    by_name = {p.name: p for p in lf.package if p.manager == "conda"}
    torch = by_name["pytorch"]
    assert torch.version == "1.13.1"
    assert torch.build is not None and "cuda11.7" in torch.build
    assert torch.url == ("https://conda.anaconda.org/pytorch/linux-64/"
                         f"pytorch-1.13.1-{torch.build}.tar.bz2")
    assert by_name["pytorch-cuda"].version == "11.7"
    assert by_name["python"].version.startswith("3.8.")
    for p in lf.package:
        assert p.hash.md5 and len(p.hash.md5) == 32, p.name
        assert p.url.startswith("https://conda.anaconda.org/"), p.url  # real URLs, not file://


def test_sha256_present_unless_the_channel_metadata_lacks_it(
        locked: tuple[LockRequest, Path]) -> None:
    """Every record has a sha256 except where the real repodata only publishes md5."""
    _, path = locked
    lf = read_lockfile(path)
    missing = [p for p in lf.package if not p.hash.sha256]
    for p in missing:
        channel_dir, subdir, fn = _snapshot_location(p.url)
        repodata = json.loads((SNAPSHOT / channel_dir / subdir / "repodata.json").read_text())
        entry = {**repodata.get("packages", {}), **repodata.get("packages.conda", {})}[fn]
        assert "sha256" not in entry, f"{fn}: the snapshot has a sha256 we dropped"
    assert [p.name for p in missing] == ["cuda-nvcc"]
    meta = envbuild_metadata(lf)
    assert any("no sha256 for cuda-nvcc-11.8.89" in w for w in meta.warnings)


def _snapshot_location(url: str) -> tuple[str, str, str]:
    mapping = json.loads((SNAPSHOT / "channels.json").read_text())
    base, subdir, fn = url.rsplit("/", 2)
    channel_dir = next(d for d, u in mapping.items() if u.rstrip("/") == base)
    return channel_dir, subdir, fn


def test_nvcc_fallback_recorded(locked: tuple[LockRequest, Path]) -> None:
    _, path = locked
    lf = read_lockfile(path)
    meta = envbuild_metadata(lf)
    assert meta.nvcc == "nvidia/label/cuda-11.8.0::cuda-nvcc 11.8.*"
    assert any("no record for 'nvidia::cuda-nvcc 11.7.*'" in w for w in meta.warnings)
    nvcc = next(p for p in lf.package if p.name == "cuda-nvcc")
    assert nvcc.url.startswith("https://conda.anaconda.org/nvidia/label/cuda-11.8.0/linux-64/")
    assert nvcc.version.startswith("11.8.")
    assert "https://conda.anaconda.org/nvidia/label/cuda-11.8.0" in [
        c.url for c in lf.metadata.channels]


def test_target_virtual_packages_not_the_locking_machine(
        locked: tuple[LockRequest, Path]) -> None:
    _, path = locked
    meta = envbuild_metadata(read_lockfile(path))
    assert meta.virtual_packages["__cuda"] == "12.0"
    assert meta.virtual_packages["__glibc"] == "2.17"


def test_conda_lock_parser_and_render_accept_it(locked: tuple[LockRequest, Path],
                                                tmp_path: Path) -> None:
    from conda_lock.lockfile import parse_conda_lock_file

    _, path = locked
    parsed = parse_conda_lock_file(path)
    assert parsed.metadata.platforms == ["linux-64"]
    exe = Path(sys.executable).parent / "conda-lock"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "conda_lock"]
    out = subprocess.run([*argv, "render", "--kind", "explicit", "--platform", "linux-64",
                          str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    explicit = (tmp_path / "conda-linux-64.lock").read_text()
    assert "@EXPLICIT" in explicit
    urls = [ln for ln in explicit.splitlines() if ln.startswith("https://")]
    assert len(urls) == sum(1 for p in parsed.package if p.manager == "conda")
    assert any("/pytorch-1.13.1-py3.8_cuda11.7" in u for u in urls)


def test_same_inputs_give_identical_bytes(locked: tuple[LockRequest, Path],
                                          tmp_path: Path) -> None:
    req, path = locked
    first = path.read_bytes()
    env_first = path.with_name("m2f-mini-cu117.environment.yml").read_bytes()
    lock(req)
    assert path.read_bytes() == first
    assert path.with_name("m2f-mini-cu117.environment.yml").read_bytes() == env_first
    assert b"created_at" not in first and b"time_metadata" not in first


def test_environment_yml_rendered_beside(locked: tuple[LockRequest, Path]) -> None:
    _, path = locked
    text = path.with_name("m2f-mini-cu117.environment.yml").read_text()
    assert "name: m2f-mini-cu117" in text
    assert "  - pytorch=1.13.1=py3.8_cuda11.7_cudnn8.5.0_0" in text
    assert "https://conda.anaconda.org/pytorch" in text


def test_check_fresh_then_stale(tmp_path: Path) -> None:
    spec = mini_spec(tmp_path)
    req = _req(tmp_path, spec=spec)
    lock(req)
    assert check(req) == []
    stale = _req(tmp_path, spec=spec, resolution=cu117_resolution(conda_extra=("cmake",)))
    problems = check(stale)
    assert any("conda specs added: cmake" in p for p in problems)
    assert any("resolution changed" in p for p in problems)
    # an edit to the spec file's content (not just a comment) makes it stale as well
    spec.path.write_text(spec.path.read_text() + "exclude_newer: 2024-01-01\n")
    from builder.spec.envspec import load_spec

    problems = check(_req(tmp_path, spec=load_spec(spec.path)))
    assert problems == ["the envspec changed"]


def test_check_detects_hand_edits(tmp_path: Path) -> None:
    req = _req(tmp_path)
    lock(req)
    text = req.output.read_text()
    req.output.write_text(text.replace("version: 1.13.1", "version: 1.13.2", 1))
    assert "the lockfile's package records were edited by hand" in check(req)


def test_check_missing_lockfile(tmp_path: Path) -> None:
    problems = check(_req(tmp_path))
    assert len(problems) == 1 and "does not exist" in problems[0]


def test_exclude_newer_filters_records(tmp_path: Path) -> None:
    spec = mini_spec(tmp_path, "exclude_newer: 2024-06-30\n")
    req = _req(tmp_path, spec=spec)
    lock(req)
    lf = read_lockfile(req.output)
    import datetime as dt

    newest = envbuild_metadata(lf).newest_record
    assert newest is not None and dt.date.fromisoformat(newest) <= dt.date(2024, 6, 30)
    unfiltered = _req(tmp_path, output=tmp_path / "b.conda-lock.yml")
    lock(unfiltered)
    later = envbuild_metadata(read_lockfile(unfiltered.output)).newest_record
    assert later is not None and later > newest


def test_interrupted_write_leaves_previous_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    req = _req(tmp_path)
    lock(req)
    before = req.output.read_bytes()
    import builder.util.fs as fs

    real_fsync = os.fsync

    def boom(fd: int) -> None:
        real_fsync(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(fs.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        lock(_req(tmp_path, resolution=cu117_resolution(conda_extra=("cmake",))))
    monkeypatch.undo()
    assert req.output.read_bytes() == before
    leftovers = [p.name for p in req.output.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_failed_solve_writes_nothing(tmp_path: Path) -> None:
    from builder.errors import ConflictError

    req = _req(tmp_path, resolution=cu117_resolution(conda_extra=("ninja >=99",)))
    with pytest.raises(ConflictError):
        lock(req)
    assert not req.output.parent.exists() or list(req.output.parent.iterdir()) == []


def test_default_lockfile_path(repo_root: Path) -> None:
    from builder.spec.envspec import load_spec

    spec_path = repo_root / "tests" / "data" / "lock" / "m2f-mini.yaml"
    path = default_lockfile_path(load_spec(spec_path), cu117_resolution())
    assert path == repo_root / "tests" / "data" / "lockfiles" / "m2f-mini-cu117.conda-lock.yml"


COMMITTED = (Path(__file__).resolve().parents[2] / "lockfiles"
             / "mask2former-cu117.conda-lock.yml")


def test_committed_cu117_lockfile() -> None:
    lf = read_lockfile(COMMITTED)
    conda = {p.name: p for p in lf.package if p.manager == "conda"}
    assert conda["pytorch"].version == "1.13.1" and "cuda11.7" in (conda["pytorch"].build or "")
    assert conda["pytorch-cuda"].version == "11.7"
    assert all(p.hash.md5 for p in conda.values())
    # md5-only in the published channel metadata
    assert [n for n, p in conda.items() if not p.hash.sha256] == ["cuda-cccl", "cuda-nvcc"]
    pip = [p for p in lf.package if p.manager == "pip"]
    assert pip and all(p.hash.sha256 and len(p.hash.sha256) == 64 for p in pip)
    meta = envbuild_metadata(lf)
    assert meta.cuda == "11.7" and meta.channels == "snapshot"
    assert {s.name for s in meta.sources} == {"detectron2", "mask2former", "panopticapi",
                                              "cityscapesscripts"}
    assert all(s.commit and len(s.sha256) == 64 for s in meta.sources)


def test_committed_cu117_lockfile_has_the_whole_build_toolchain() -> None:
    """Every piece an op build needs is locked, at CUDA 11.7 (nvcc: the 11.8 fallback)."""
    lf = read_lockfile(COMMITTED)
    meta = envbuild_metadata(lf)
    pieces = {p.piece: p for p in meta.toolchain}
    assert list(pieces) == ["compiler", "nvcc", "cudart", "cusparse", "cublas", "cusolver",
                            "cccl"]
    assert all(p.kind and p.spec for p in pieces.values())
    assert not any("incomplete" in w for w in meta.warnings)
    versions = {p.name: p.version for p in lf.package}
    # the header wheels are exactly the runtime libraries pytorch-cuda 11.7 locks
    for wheel, lib in (("nvidia-cuda-runtime-cu11", "cuda-cudart"),
                       ("nvidia-cusparse-cu11", "libcusparse"),
                       ("nvidia-cublas-cu11", "libcublas"),
                       ("nvidia-cusolver-cu11", "libcusolver")):
        assert versions[wheel] == versions[lib], wheel
    assert pieces["cudart"].include == "nvidia/cuda_runtime/include"
    assert pieces["cudart"].reason and "--fill-gaps pypi" in pieces["cudart"].reason
    assert versions["cuda-nvcc"] == "11.8.89" and versions["cuda-cccl"] == "11.8.89"


def test_committed_cu117_lockfile_is_fresh() -> None:
    """`envbuild lock envspecs/mask2former.yaml --cuda 11.7 --check` with the real resolver."""
    from tests.helpers import run_cli

    out = run_cli("lock", "envspecs/mask2former.yaml", "--cuda", "11.7",
                  "--channel-snapshot", str(SNAPSHOT), "--check")
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout


def test_committed_lockfile_is_not_stale_for_env_on_live_channels() -> None:
    """`make env` uses the committed lockfile as is: that it was solved from the snapshot is
    no reason to call it stale (its records carry the real URLs); only a changed request is."""
    from dataclasses import replace

    from builder.lock import LockRequest, check
    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.spec.envspec import load_spec

    loaded = load_spec(COMMITTED.parent.parent / "envspecs" / "mask2former.yaml")
    req = LockRequest(spec=loaded, resolution=resolve(loaded, ResolveRequest(cuda="11.7")),
                      output=COMMITTED)
    assert check(replace(req, check_channels=False)) == []
    assert any("channels" in d for d in check(req))  # `envbuild lock --check` still sees it
    changed = replace(req, resolution=req.resolution.model_copy(
        update={"pip": (*req.resolution.pip, "rich")}), check_channels=False)
    assert any("rich" in d for d in check(changed))


def test_committed_lockfile_is_an_install_plan() -> None:
    from builder.install.plan import load_plan

    plan = load_plan(COMMITTED, platform="linux-64")
    md5_only = [r for r in plan.conda if r.name in {"cuda-nvcc", "cuda-cccl"}]
    assert len(md5_only) == 2
    assert all(r.sha256 is None and r.key.startswith("md5-") for r in md5_only)
    assert all(r.key == r.sha256 for r in plan.conda if r not in md5_only)
    assert plan.pip and all(len(r.sha256) == 64 for r in plan.pip)


def test_committed_lockfile_round_trips_byte_for_byte(repo_root: Path) -> None:
    from builder.lock.lockfile import render_lockfile

    path = repo_root / "lockfiles" / "mask2former-cu117.conda-lock.yml"
    text = path.read_text()
    lines = text.splitlines()
    spec_rel = lines[1].split("envbuild lock ", 1)[1].split(" --cuda")[0]
    assert render_lockfile(read_lockfile(path), spec_rel, "11.7") == text


def test_libyaml_and_pure_python_dumpers_agree(repo_root: Path) -> None:
    import yaml

    from builder.lock.lockformat import dump_yaml, to_data

    data = to_data(read_lockfile(repo_root / "lockfiles" / "mask2former-cu117.conda-lock.yml"))
    assert dump_yaml(data) == yaml.dump(data, sort_keys=False, Dumper=yaml.Dumper)
    odd = {"k": "caf\u00e9 \x0b tab\tand\r\nnewline " * 5, "l": [{"m": "\u20ac" * 90}]}
    assert dump_yaml(odd) == yaml.dump(odd, sort_keys=False, Dumper=yaml.Dumper)


def test_aliases_are_refused(tmp_path: Path, repo_root: Path) -> None:
    from builder.errors import SpecError

    bomb = tmp_path / "bomb.conda-lock.yml"
    bomb.write_text("version: 1\nx: &a [1, 2]\ny: [*a, *a]\nmetadata: {}\npackage: []\n")
    with pytest.raises(SpecError, match="aliases"):
        read_lockfile(bomb)


def test_reading_and_installing_never_import_conda_lock(locked: tuple[LockRequest, Path]
                                                        ) -> None:
    _, path = locked
    probe = ("import sys\nfrom pathlib import Path\n"
             "from builder.lock.lockfile import envbuild_metadata, read_lockfile\n"
             "from builder.install.plan import load_plan\n"
             f"envbuild_metadata(read_lockfile(Path({str(path)!r})))\n"
             f"load_plan(Path({str(path)!r}), platform='linux-64')\n"
             "assert 'builder.lock.pipeline' not in sys.modules, 'reading imported the pipeline'\n"
             "assert 'builder.sources.fetch' not in sys.modules, 'reading imported the fetcher'\n"
             "assert 'builder.spec.envspec' not in sys.modules, 'reading imported the spec'\n"
             "import builder.lock.api, builder.cli.install, builder.cli.lock, builder.env.stages\n"
             "assert 'conda_lock' not in sys.modules, 'conda_lock was imported'\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
