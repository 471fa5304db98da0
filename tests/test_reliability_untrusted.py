"""Every field of a lockfile or spec is untrusted: hostile values are refused at
``path:line`` with exit 2, quickly, before they reach a path, a command line or a file.

The lockfile is the demo's (local channel); each trial edits one field of one record the
way an attacker would, runs ``envbuild install`` for real, and checks that nothing
outside envbuild's own directories changed (a victim directory shaped to match the
record), that no prefix was created, and that no traceback was printed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from builder.localchannel import LocalChannel, write_channel_lockfile
from tests.helpers.reliability import record, run_to_end, tree_state
from tests.test_install_faults import local  # noqa: F401 - fixture

pytestmark = pytest.mark.reliability

TOOL = "envbuild-demo-tool"
WHEEL = "envbuild-demo-greeting"


def _record(text: str, name: str) -> dict[str, object]:
    rec: dict[str, object] = next(p for p in yaml.safe_load(text)["package"]
                                  if p["name"] == name)
    return rec


def _hostile(text: str, victim: Path) -> dict[str, str]:
    """name -> the lockfile text with one hostile field."""
    tool, wheel = _record(text, TOOL), _record(text, WHEEL)
    tool_sha = tool["hash"]["sha256"]  # type: ignore[index]
    wheel_sha = wheel["hash"]["sha256"]  # type: ignore[index]
    tool_url, wheel_url = str(tool["url"]), str(wheel["url"])
    chan = tool_url.rsplit("/noarch/", 1)[0]
    return {
        "conda sha256 = victim dir": text.replace(tool_sha, str(victim)),
        "conda sha256 = ../../..": text.replace(tool_sha, "../../.."),
        "conda sha256 63 hex + /": text.replace(tool_sha, tool_sha[:63] + "/"),
        "conda md5 = path": text.replace(f"sha256: {tool_sha}",
                                         f"sha256: {tool_sha}\n    md5: ../../x"),
        "pip sha256 + newline -r": text.replace(
            wheel_sha, json.dumps(f"{wheel_sha}\n-r /etc/shadow")),
        "pip name + newline": text.replace(f"name: {WHEEL}",
                                           "name: " + json.dumps(f"{WHEEL}\n-r /etc/shadow")),
        "conda url ..": text.replace(tool_url, f"{chan}/noarch/../../../../etc/x-1-0.conda"),
        "conda url %2e%2e": text.replace(tool_url, f"{chan}/noarch/%2e%2e/x-1-0.conda"),
        "pip url %2F..": text.replace(wheel_url, f"{chan}/..%2F..%2Fevil-1-py3-none-any.whl"),
        "pip url ftp": text.replace(wheel_url, "ftp://example.invalid/evil-1-py3-none-any.whl"),
        "pip url query": text.replace(wheel_url, wheel_url + "?x=1"),
        "conda build with /": text.replace("build: '0'", "build: ../0")
        if "build: '0'" in text else text.replace("build: 0\n", "build: ../0\n", 1),
        "dependency name with space": text.replace(
            "dependencies:\n    python: '>=3.8'", "dependencies:\n    'py thon': '>=3.8'"),
    }


def _alias_bomb(levels: int) -> str:
    lines = ["version: 1", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines += ["metadata: {}", f"package: *a{levels}"]
    return "\n".join(lines) + "\n"


def test_hostile_lockfile_fields_are_refused(local: LocalChannel, tmp_path: Path) -> None:  # noqa: F811
    base = write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml").read_text()
    tool_file = str(_record(base, TOOL)["url"]).rsplit("/", 1)[-1]
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "x.txt").write_text("data\n")
    (victim / tool_file).write_bytes((local.channel / "noarch" / tool_file).read_bytes())
    before = tree_state(victim)
    cases = _hostile(base, victim)
    cases["alias bomb, 7 levels"] = _alias_bomb(7)
    refused, slowest = [], 0.0
    for name, text in cases.items():
        assert text != base, f"{name}: the edit did not apply"
        lockfile = tmp_path / f"hostile-{len(refused)}.conda-lock.yml"
        lockfile.write_text(text)
        prefix = tmp_path / f"p-{len(refused)}"
        rc, _, err, secs = run_to_end(["install", str(lockfile), "--prefix", str(prefix)],
                                      tmp_path / "logs",
                                      env={"ENVBUILD_HOME": str(tmp_path / "home")})
        assert rc == 2, f"{name}: exit {rc}\n{err}"
        assert f"{lockfile}:" in err, f"{name}: no path:line\n{err}"
        assert "Traceback" not in err and "internal error" not in err, f"{name}\n{err}"
        assert not prefix.exists() and not prefix.is_symlink(), name
        assert tree_state(victim) == before, f"{name}: the victim directory changed"
        refused.append(name)
        slowest = max(slowest, secs)
    assert slowest < 10
    record("hostile lockfile fields", cases=len(cases), refused_exit_2=f"{len(refused)}/"
           f"{len(cases)}", victim_unchanged=f"{len(refused)}/{len(cases)}",
           slowest_s=round(slowest, 2))


def test_alias_bombs_refused_fast(tmp_path: Path) -> None:
    """A 552-byte-class spec bomb and a 7-level lockfile bomb: exit 2 at path:line in well
    under a second of envbuild's own time (the process start is measured separately)."""
    spec = tmp_path / "bomb.yaml"
    spec.write_text("name: bomb\npython: '3.11'\ntorch: '2.4'\n"
                    + _alias_bomb(9).replace("version: 1\n", "").replace("metadata: {}\n", "")
                    .replace("package:", "conda:"))
    lock = tmp_path / "bomb.conda-lock.yml"
    lock.write_text(_alias_bomb(7))
    times = {}
    for args, path in ((["resolve", str(spec)], spec),
                       (["install", str(lock), "--prefix", str(tmp_path / "p")], lock)):
        start = time.monotonic()
        rc, _, err, _ = run_to_end(args, tmp_path / "logs")
        times[args[0]] = time.monotonic() - start
        assert rc == 2, err
        assert f"{path}:" in err and "alias" in err, err
        assert "Traceback" not in err
    baseline_start = time.monotonic()
    run_to_end(["--help"], tmp_path / "logs")
    startup = time.monotonic() - baseline_start
    for cmd_name, secs in times.items():
        assert secs - startup < 1.0, (cmd_name, secs, startup)
    record("YAML alias bombs", spec_bytes=spec.stat().st_size, lock_levels=7,
           refused_exit_2="2/2", **{f"{k}_s": round(v, 2) for k, v in times.items()},
           cli_startup_s=round(startup, 2))


def test_bad_prefixes_and_names_are_usage_errors(local: LocalChannel,  # noqa: F811
                                                 tmp_path: Path) -> None:
    """``--prefix /``, a prefix name too long for its generations dir, a 300-character spec
    name: exit 2 with a message; ``rollback`` of a missing prefix creates nothing."""
    lockfile = write_channel_lockfile(local, tmp_path / "demo.conda-lock.yml")
    spec = tmp_path / "long.yaml"
    spec.write_text(f"name: {'a' * 300}\npython: '3.11'\ntorch: '2.4'\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    cases = {
        "--prefix /": (["install", str(lockfile), "--prefix", "/"], 2),
        "--prefix 260-byte name": (["install", str(lockfile), "--prefix",
                                    str(tmp_path / ("n" * 260))], 2),
        "300-character spec name": (["lock", str(spec)], 2),
        "rollback missing prefix": (["rollback", "--prefix", str(tmp_path / "none")], 1),
    }
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, (args, code) in cases.items():
        rc, _, err, _ = run_to_end(args, logs)
        assert rc == code, f"{name}: exit {rc}\n{err}"
        assert "Traceback" not in err and "internal error" not in err, f"{name}\n{err}"
    after = sorted(p.name for p in tmp_path.iterdir())
    assert before == after, set(after) - set(before)
    record("bad prefixes and names", cases=len(cases), clear_exit=f"{len(cases)}/{len(cases)}",
           created_nothing="1/1")
