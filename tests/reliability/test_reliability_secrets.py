"""Credentials in channel and index URLs never reach lockfiles, logs or written files.

A loopback server stands in for an authenticated channel and wheel index.  Credentials
appear in the spec's ``channels``, in ``--channel`` and in ``pip_options.find_links``;
``envbuild lock`` and ``envbuild install`` then run for real, and every byte they print
or write (lockfile, environment.yml, the prefix, ENVBUILD_HOME) is searched for the
secret.  The server's log shows the credentials were really used to authenticate.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel
from tests.helpers.reliability import (
    record,
    run_to_end,
    serve_directory,
    write_links_page,
    write_wheel,
)

pytestmark = pytest.mark.reliability

SECRET = "s3cretTOKEN42"
USER = "alice"


def _files_with_secret(*roots: Path) -> list[str]:
    hits = []
    for root in roots:
        for path in root.rglob("*") if root.exists() else ():
            if path.is_file() and not path.is_symlink():
                try:
                    if SECRET.encode() in path.read_bytes():
                        hits.append(str(path))
                except OSError:
                    continue
    return hits


@pytest.fixture
def project(local: LocalChannel, tmp_path: Path) -> tuple[Path, Path]:
    """(www root served over http, project dir with envspecs/ and a local wheel dir)."""
    www = tmp_path / "www"
    shutil.copytree(local.channel, www / "channel")
    shutil.copytree(local.wheelhouse, www / "wheels")
    # torch has a local version (2.13.0+cpu): uv writes its '+' as '%2B' in the http URL
    write_wheel(www / "wheels", "torch", "2.13.0+cpu",
                {"torch/__init__.py": "__version__ = '2.13.0+cpu'\n"})
    write_links_page(www / "wheels")
    proj = tmp_path / "project"
    (proj / "envspecs").mkdir(parents=True)
    return www, proj


def _spec(proj: Path, base: str, channel_in_spec: bool) -> Path:
    auth = base.replace("http://", f"http://{USER}:{SECRET}@")
    spec = proj / "envspecs" / "demo.yaml"
    channels = f'["{auth}/channel"]' if channel_in_spec else '["conda-forge"]'
    spec.write_text(
        'name: demo\npython: "3.11"\ntorch: "==2.13.0"\ntorch_from: pypi\ntorchvision: false\n'
        f"channels: {channels}\npip: [envbuild-demo-greeting]\npip_options:\n"
        f'  find_links: ["{auth}/wheels/"]\n  no_index: true\n')
    return spec


@pytest.mark.parametrize("where", ["spec channels", "--channel"])
def test_credentials_never_reach_lockfiles_or_logs(project: tuple[Path, Path], tmp_path: Path,
                                                   where: str) -> None:
    www, proj = project
    home = Path(os.environ["ENVBUILD_HOME"])
    logs = tmp_path / "logs"
    outputs: list[str] = []
    with serve_directory(www) as server:
        spec = _spec(proj, server.url, channel_in_spec=where == "spec channels")
        auth_channel = server.url.replace("http://", f"http://{USER}:{SECRET}@") + "/channel"
        extra = ["--channel", auth_channel] if where == "--channel" else []
        lockfile = proj / "lockfiles" / "demo-cpu.conda-lock.yml"
        rc, out, err, _ = run_to_end(["lock", str(spec), "--cuda", "cpu", *extra], logs,
                                     env={"NO_COLOR": "1"})
        outputs += [out, err]
        assert rc == 0, err
        assert lockfile.is_file()
        used_auth = {a for _, a in server.requests if a}
        # a lock that fails (CUDA 13.0 needs an nvcc this channel lacks) names the channel
        bad = run_to_end(["lock", str(spec), "--cuda", "13.0", "-o", str(tmp_path / "x.yml"),
                          *extra], logs)
        outputs += [bad[1], bad[2]]
        assert bad[0] == 1, bad[2]
        if extra:
            assert "127.0.0.1" in bad[2]  # the message names the channel, without the secret
        prefix = tmp_path / "env"
        rc, out, err, _ = run_to_end(["install", str(lockfile), "--prefix", str(prefix)], logs)
        outputs += [out, err]
        install_ok = rc == 0
    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    leaks = [f"output #{i}" for i, text in enumerate(outputs) if SECRET in text]
    leaks += _files_with_secret(proj / "lockfiles", tmp_path / "env.envbuild-gens", logs)
    cache_leaks = _files_with_secret(home)
    record(f"credentials in {where} (lock + install)", trials=1,
           leaks_in_outputs_lockfiles_prefix=leaks, leaks_in_envbuild_home=cache_leaks,
           authenticated_with_the_credentials=expected in used_auth,
           install_from_the_redacted_lockfile_ok=install_ok)
    assert not leaks, leaks
    assert expected in used_auth, "the credentials were not used to authenticate"
    assert SECRET not in lockfile.read_text() and "127.0.0.1" in lockfile.read_text()
    assert not cache_leaks, cache_leaks  # rattler's repodata cache included


def test_crash_report_does_not_keep_credentials(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error writes argv into a crash report; a --channel secret must not."""
    from builder.cli import _crash_report

    monkeypatch.setattr(sys, "argv", ["envbuild", "lock", "spec.yaml", "--channel",
                                      f"https://{USER}:{SECRET}@conda.example.invalid/chan"])
    try:
        raise RuntimeError(f"boom while reading https://{USER}:{SECRET}@conda.example.invalid")
    except RuntimeError as exc:
        path = Path(_crash_report(exc))
    assert path.is_file()
    text = path.read_text()
    assert SECRET not in text, text
    # redacted, not dropped: the report still says which command and host were involved
    assert "--channel" in text and "https://conda.example.invalid/chan" in text, text
    assert "boom while reading https://conda.example.invalid" in text, text


def test_credentials_never_on_uvs_command_line(tmp_path: Path) -> None:
    """Index URLs and find-links go to uv through a 0600 uv.toml, never through argv (which
    every user can read in /proc/PID/cmdline); the lock test above shows uv uses them."""
    from builder.lock.pypi_layer import PypiRequest, _argv, _write_inputs

    cred = f"https://{USER}:{SECRET}@example.invalid"
    req = PypiRequest(requirements=("demo",), python_version="3.11.7",
                      index_url=f"{cred}/simple", extra_index_urls=(f"{cred}/extra",),
                      find_links=(f"{cred}/wheels/",), no_index=True)
    _write_inputs(req, tmp_path)
    argv = _argv(req, offline=False)
    config = tmp_path / "uv.toml"
    assert SECRET not in " ".join(argv)
    assert "--config-file" in argv and (config.stat().st_mode & 0o077) == 0
    from builder.lock.pypi_layer import tomllib  # tomli before python 3.11

    pip = tomllib.loads(config.read_text())["pip"]
    assert pip["find-links"] == [f"{cred}/wheels/"] and pip["index-url"] == f"{cred}/simple"
    assert pip["extra-index-url"] == [f"{cred}/extra"] and pip["no-index"] is True
    record("credentials on uv's command line", argv_with_secret=0, config_mode="0600")


def test_git_source_credentials_not_on_gits_command_line(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A credentialed git URL is fetched for real (dumb HTTP over the loopback server) with
    the URL on git's command line stripped of its credentials: git gets them back from an
    ``insteadOf`` rule in its environment, and the server sees them."""
    import subprocess

    from builder.sources import fetch as sources
    from builder.util import cmd

    repo = tmp_path / "up"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    (repo).mkdir()
    (repo / "a.py").write_text("x = 1\n")
    for args in (["init", "-q"], ["add", "a.py"], ["commit", "-qm", "one"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                            env=env, capture_output=True, text=True).stdout.strip()
    www = tmp_path / "www"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(www / "up.git")],
                   check=True, env=env)
    subprocess.run(["git", "-C", str(www / "up.git"), "update-server-info"], check=True, env=env)
    seen: list[list[str]] = []
    real_run = cmd.run

    def spy(argv: list[object], *a: object, **kw: object) -> object:
        seen.append([str(x) for x in argv])
        return real_run(argv, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cmd, "run", spy)
    # dumb HTTP to the loopback server (the offline environment allows git only ``file``;
    # its proxies still keep git off any other host)
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file:http")
    with serve_directory(www) as server:
        url = server.url.replace("://", f"://{USER}:{SECRET}@") + "/up.git"
        mirror = sources._fetch_into_mirror("up", url, commit)
        asked = list(server.requests)
    assert sources._resolve_commit(mirror, commit) == commit
    assert seen and not [a for a in seen if any(SECRET in x for x in a)], seen
    # git sends URL credentials only when challenged (this server never is); the fetch
    # itself shows the rule was applied: git has no transport for the argv's envbuild+http
    assert any(p.endswith("/up.git/HEAD") for p, _ in asked), asked
    assert any("envbuild+http://127.0.0.1" in " ".join(a) for a in seen), seen
    assert not _files_with_secret(mirror)
    record("credentials on git's command line", git_commands=len(seen), argv_with_secret=0,
           fetched_through_the_rule=True)
