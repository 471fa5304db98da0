"""builder.install: lockfile -> prefix with py-rattler + uv, generations, rollback, activation."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.errors import CheckFailed, EnvbuildError, UsageError
from builder.install import InstallRequest, install, rollback
from builder.install.generations import Generations
from builder.install.plan import load_plan
from builder.install.state import read_state
from tests.helpers import run_cli


@pytest.fixture
def lockfile(local: LocalChannel, tmp_path: Path) -> Path:
    return write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")


def _py(prefix: Path, code: str) -> str:
    out = subprocess.run([str(prefix / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return out.stdout.strip()


def test_install_makes_working_prefix(lockfile: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "envs" / "demo"
    result = install(InstallRequest(lockfile=lockfile, prefix=prefix))
    assert result.action == "installed" and result.generation == 1
    assert prefix.is_symlink()
    assert _py(prefix, "import sys; print(sys.prefix)") == str(prefix)
    assert _py(prefix, "import envbuild_demo_greeting as g; print(g.greet())") == \
        "hello from the pip layer"
    tool = (prefix / "bin" / "envbuild-demo-hello").read_text().splitlines()[0]
    assert tool == f"#!{prefix}/bin/python3"
    state = read_state(prefix)
    assert state is not None and state.install_key == load_plan(lockfile).install_key
    for rel in ("etc/conda/activate.d/envbuild.sh", "etc/conda/deactivate.d/envbuild.sh",
                "activate"):
        assert (prefix / rel).is_file()


def test_second_install_is_a_noop(lockfile: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    install(InstallRequest(lockfile=lockfile, prefix=prefix))
    again = install(InstallRequest(lockfile=lockfile, prefix=prefix))
    assert again.action == "up to date" and again.generation == 1


def test_generations_rollback_and_prune(lockfile: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    for _ in range(3):
        install(InstallRequest(lockfile=lockfile, prefix=prefix, force=True))
    gens = Generations(prefix)
    assert gens.current() == 3 and gens.complete() == [2, 3]
    back = rollback(prefix)
    assert (back.from_generation, back.to_generation) == (3, 2)
    assert _py(prefix, "import envbuild_demo_greeting; print('ok')") == "ok"
    with pytest.raises(CheckFailed):
        rollback(prefix)


def test_activation_scripts_set_and_restore(lockfile: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    install(InstallRequest(lockfile=lockfile, prefix=prefix))
    script = (f'export CUDA_HOME=/usr/local/cuda; . "{prefix}/activate"; '
              'echo "$(command -v python)|${CUDA_HOME-unset}|$CUDA_DEVICE_ORDER"; '
              'envbuild_deactivate; echo "${CUDA_HOME-unset}|${CUDA_DEVICE_ORDER-unset}"')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout.splitlines()
    assert out[0] == f"{prefix}/bin/python|unset|PCI_BUS_ID"  # CPU env: no toolkit
    assert out[1] == "/usr/local/cuda|unset"


def _tamper(lockfile: Path, name: str) -> Path:
    text = lockfile.read_text().splitlines()
    out, inside = [], False
    for line in text:
        if line.startswith("- name: "):
            inside = line == f"- name: {name}"
        if inside and line.strip().startswith("sha256: "):
            line = line.split("sha256: ")[0] + "sha256: " + "ab" * 32
        if inside and line.strip().startswith("md5: "):
            line = line.split("md5: ")[0] + "md5: " + "cd" * 16
        out.append(line)
    bad = lockfile.with_name("tampered.conda-lock.yml")
    bad.write_text("\n".join(out) + "\n")
    return bad


@pytest.mark.parametrize("name", ["envbuild-demo-tool", "envbuild-demo-greeting"])
def test_hash_mismatch_refused_prefix_untouched(lockfile: Path, tmp_path: Path,
                                                name: str) -> None:
    prefix = tmp_path / "p"
    install(InstallRequest(lockfile=lockfile, prefix=prefix))
    with pytest.raises(EnvbuildError) as err:
        install(InstallRequest(lockfile=_tamper(lockfile, name), prefix=prefix))
    assert "hash" in str(err.value).lower() or "hash" in (err.value.hint or "")
    assert Generations(prefix).current() == 1
    assert sorted(p.name for p in Generations(prefix).root.iterdir()) == [".lock", "1"]
    assert _py(prefix, "import envbuild_demo_greeting; print('ok')") == "ok"


def test_tampered_archive_never_enters_cache(lockfile: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="hash mismatch"):
        install(InstallRequest(lockfile=_tamper(lockfile, "envbuild-demo-tool"),
                               prefix=tmp_path / "p"))
    assert not (tmp_path / "p").exists()
    from builder import paths

    assert not (paths.pkgs_cache() / "archives" / ("ab" * 32)).exists()


def test_missing_lockfile_exit_2(tmp_path: Path) -> None:
    out = run_cli("install", str(tmp_path / "nope.conda-lock.yml"), "--prefix",
                  str(tmp_path / "p"))
    assert out.returncode == 2 and "lockfile not found" in out.stderr
    assert "make lock" in out.stderr


def test_other_platform_lockfile_exit_2(local: LocalChannel, tmp_path: Path) -> None:
    lf = write_channel_lockfile(local, tmp_path / "osx.conda-lock.yml", platform="osx-arm64")
    out = run_cli("install", str(lf), "--prefix", str(tmp_path / "p"))
    assert out.returncode == 2, out.stderr
    assert "osx-arm64" in out.stderr and "linux-64" in out.stderr


def test_unmanaged_prefix_is_refused(lockfile: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "mine"
    prefix.mkdir()
    (prefix / "precious.txt").write_text("x")
    with pytest.raises(UsageError, match="not an envbuild prefix"):
        install(InstallRequest(lockfile=lockfile, prefix=prefix))
    assert (prefix / "precious.txt").read_text() == "x"


def test_cli_install_then_up_to_date(lockfile: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    first = run_cli("install", str(lockfile), "--prefix", str(prefix))
    assert first.returncode == 0, first.stderr
    assert "installed 3 conda + 1 pip" in first.stdout
    second = run_cli("install", str(lockfile), "--prefix", str(prefix))
    assert second.returncode == 0 and "up to date" in second.stdout
    state = json.loads((prefix / ".envbuild" / "state.json").read_text())
    assert state["generation"] == 1 and state["prefix"] == str(prefix)
    assert os.readlink(prefix) == "p.envbuild-gens/1"


def _strip_sha256(lockfile: Path, name: str, tmp_path: Path, md5: str | None = None) -> Path:
    """A copy of ``lockfile`` where conda record ``name`` is pinned by md5 only."""
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(lockfile.read_text())
    hit = [p for p in data["package"] if p["name"] == name and p["manager"] == "conda"]
    assert hit, f"no conda record {name} in {lockfile}"
    del hit[0]["hash"]["sha256"]
    if md5 is not None:
        hit[0]["hash"]["md5"] = md5
    out = tmp_path / "md5only.conda-lock.yml"
    with open(out, "w") as fh:
        yaml.dump(data, fh)
    return out


def test_md5_only_record_is_pinned_by_md5(lockfile: Path, tmp_path: Path) -> None:
    # Channels publish some old packages with an md5 only (nvidia's cuda-nvcc 11.8.89 in
    # the committed cu117 lockfile): such a record installs, verified by its md5.
    md5only = _strip_sha256(lockfile, "envbuild-demo-tool", tmp_path)
    prefix = tmp_path / "p"
    install(InstallRequest(lockfile=md5only, prefix=prefix))
    assert (prefix / "bin" / "envbuild-demo-hello").is_file()
    cached = list((Path(os.environ["ENVBUILD_HOME"]) / "pkgs" / "archives").glob("md5-*"))
    assert len(cached) == 1


def test_md5_only_record_with_wrong_md5_is_refused(lockfile: Path, tmp_path: Path) -> None:
    bad = _strip_sha256(lockfile, "envbuild-demo-tool", tmp_path, md5="0" * 32)
    prefix = tmp_path / "p"
    with pytest.raises(CheckFailed, match="md5 mismatch"):
        install(InstallRequest(lockfile=bad, prefix=prefix))
    assert not prefix.exists()


def _located_line(path: Path, exc: EnvbuildError) -> str:
    """The lockfile line an error's ``path:line:`` prefix points at."""
    prefix, line, _ = exc.message.split(":", 2)
    assert prefix == str(path), exc.message
    return path.read_text().splitlines()[int(line) - 1]


@pytest.mark.parametrize(("change", "platform", "expected", "at"), [
    (("\n  url: file://", "\n  url: "), "linux-64", "has no scheme", "url: /"),
    (("/noarch/", "/osx-64/"), "linux-64", "no linux-64 or noarch subdir", "url: file://"),
    ((".conda\n", ".zip\n"), "linux-64", "conda archive", "url: file://"),
    (("", ""), "osx-arm64", "not for this machine (osx-arm64)", "platforms:"),
])
def test_plan_errors_name_the_lockfile_line(lockfile: Path, change: tuple[str, str],
                                            platform: str, expected: str, at: str) -> None:
    """Records envbuild cannot install are refused at their ``path:line`` (exit 2)."""
    text = lockfile.read_text()
    assert change[0] in text
    lockfile.write_text(text.replace(*change, 1) if change[0] else text)
    with pytest.raises(UsageError) as info:
        load_plan(lockfile, platform=platform)
    assert info.value.exit_code == 2 and expected in info.value.message
    assert at in _located_line(lockfile, info.value)
