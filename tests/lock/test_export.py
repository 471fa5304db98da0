"""``envbuild export``: each format read back by its own tool or library."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.install.plan import load_plan
from builder.lock.export import export
from tests.helpers import REPO, run_cli

COMMITTED = REPO / "lockfiles" / "mask2former-cu117.conda-lock.yml"


@pytest.fixture
def lockfile(local: LocalChannel, tmp_path: Path) -> Path:
    return write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")


def _pip_parse(path: Path) -> list[object]:
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements

    return list(parse_requirements(str(path), session=PipSession()))


def test_pixi_lock_reads_back_with_py_rattler(tmp_path: Path) -> None:
    import rattler

    plan = load_plan(COMMITTED, "linux-64")
    out = tmp_path / "pixi.lock"
    done = run_cli("export", str(COMMITTED), "--format", "pixi", "-o", str(out))
    assert done.returncode == 0, done.stderr
    env = rattler.LockFile.from_path(out).default_environment()
    assert env is not None
    conda = {r.url: (r.sha256.hex() if r.sha256 else None)
             for r in env.conda_repodata_records()["linux-64"]}
    assert conda == {r.url: r.sha256 for r in plan.conda}
    pypi = {p.location: (p.hashes.sha256.hex() if p.hashes and p.hashes.sha256 else None)
            for p in env.pypi_packages()["linux-64"]}
    assert pypi == {p.url: p.sha256 for p in plan.pip}


def test_requirements_install_with_pip_require_hashes(lockfile: Path, tmp_path: Path) -> None:
    plan = load_plan(lockfile)
    assert plan.pip, "the local channel's lockfile has a pip layer"
    req = tmp_path / "requirements.txt"
    req.write_text(export(lockfile, "requirements").text)
    parsed = _pip_parse(req)
    assert len(parsed) == len(plan.pip)
    for item, rec in zip(parsed, sorted(plan.pip, key=lambda r: r.name), strict=True):
        assert item.requirement.strip() == f"{rec.name} @ {rec.url}"  # type: ignore[attr-defined]
        assert item.options == {"hashes": {"sha256": [rec.sha256]}}  # type: ignore[attr-defined]
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
           "--require-hashes", "--target", str(tmp_path / "t"), "-r", str(req)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Would install" in done.stdout
    # and pip refuses the file once a hash is wrong: the hashes are really checked
    bad = tmp_path / "bad.txt"
    text = req.read_text()
    bad.write_text(text.replace(plan.pip[0].sha256, "0" * 64))
    done = subprocess.run([*pip[:-1], str(bad)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "HASHES" in done.stderr.upper()


def test_explicit_lists_every_conda_record_with_its_md5() -> None:
    plan = load_plan(COMMITTED, "linux-64")
    text = export(COMMITTED, "explicit").text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "@EXPLICIT"
    # conda's explicit format: <url to .conda or .tar.bz2>#<md5>, one package a line
    pattern = re.compile(r"^(?P<url>\S+/[^/#]+(?:\.tar\.bz2|\.conda))#(?P<md5>[0-9a-f]{32})$")
    found = {}
    for line in lines[1:]:
        m = pattern.match(line)
        assert m, line
        found[m["url"]] = m["md5"]
    assert found == {r.url: r.md5 for r in plan.conda}
    pip = [line for line in text.splitlines() if line.startswith("# pip ")]
    assert len(pip) == len(plan.pip)


def test_environment_yml_keeps_pip_index_options(tmp_path: Path) -> None:
    import rattler

    from builder.lock.render import pip_option_lines
    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.spec.envspec import load_spec

    spec = tmp_path / "envspecs" / "p.yaml"
    spec.parent.mkdir()
    (tmp_path / "wheels").mkdir()
    spec.write_text('name: p\npython: "3.10"\ntorch: "==1.13.1"\ntorch_from: pypi\n'
                    'cuda: {default: "11.6"}\npip: [numpy]\n'
                    "pip_options:\n  find_links: [../wheels]\n")
    loaded = load_spec(spec)
    res = resolve(loaded, ResolveRequest(cuda="11.6"))  # not PyPI's default CUDA build
    lines = pip_option_lines(loaded, res, tmp_path / "lockfiles")
    assert "--extra-index-url https://download.pytorch.org/whl/cu116" in lines
    assert "--find-links ../wheels" in lines
    # what `conda env create` does with the pip: list: a requirements file beside the yml
    text = export(COMMITTED, "environment-yml").text
    data = yaml.safe_load(text)
    conda = [d for d in data["dependencies"] if isinstance(d, str)]
    for dep in conda:
        rattler.MatchSpec(dep)  # name=version=build, as conda reads it
    pip_list = next(d["pip"] for d in data["dependencies"] if isinstance(d, dict))
    req = tmp_path / "lockfiles" / "condaenv.requirements.txt"
    req.parent.mkdir()
    req.write_text("\n".join([*lines, *pip_list]) + "\n")
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import get_file_content

    assert get_file_content(str(req), PipSession())
    parsed = _pip_parse(req)
    assert len(parsed) == len(pip_list)


def test_rendered_environment_yml_beside_a_pypi_lock_has_the_options(tmp_path: Path) -> None:
    from builder.lock.lockfile import envbuild_metadata, read_lockfile
    from builder.lock.render import render_environment

    model = read_lockfile(COMMITTED)
    text = render_environment(model, envbuild_metadata(model), COMMITTED.name,
                              ["--extra-index-url https://download.pytorch.org/whl/cu117"])
    pip_list = next(d["pip"] for d in yaml.safe_load(text)["dependencies"]
                    if isinstance(d, dict))
    assert pip_list[0] == "--extra-index-url https://download.pytorch.org/whl/cu117"


def test_unknown_format_is_usage_error(lockfile: Path) -> None:
    out = run_cli("export", str(lockfile), "--format", "poetry", "--json")
    assert out.returncode == 2
    assert '"exit_code": 2' in out.stdout
