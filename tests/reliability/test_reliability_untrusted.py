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

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from tests.helpers.reliability import record, run_to_end, tree_state

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


def test_hostile_lockfile_fields_are_refused(local: LocalChannel, tmp_path: Path) -> None:
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


def test_bad_prefixes_and_names_are_usage_errors(local: LocalChannel,
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


def _path_spec(tmp_path: Path) -> tuple[Path, Path]:
    checkout = tmp_path / "mine"
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "a.py").write_text("x = 1\n")
    spec = tmp_path / "envspecs" / "p.yaml"
    spec.parent.mkdir()
    spec.write_text('name: p\npython: "3.8"\ntorch: "1.13.1"\n'
                    'sources:\n  mine: {path: "../mine"}\n')
    return checkout, spec


_PIN = """
import sys
from pathlib import Path
from builder.errors import EnvbuildError
from builder.sources.fetch import pin_source
from builder.spec.envspec import load_spec
loaded = load_spec(Path(sys.argv[1]))
try:
    print(pin_source("mine", loaded.spec.sources["mine"], loaded).sha256)
except EnvbuildError as exc:
    print(f"exit {exc.exit_code}: {exc.message}")
"""


def _pin(spec: Path) -> str:
    """Pin the path source in a child process (a hang is a timeout, not a stuck suite)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PIN, str(spec)], capture_output=True,
                         text=True, timeout=30, check=False)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return out.stdout.strip()


def test_path_source_links_and_special_files(tmp_path: Path) -> None:
    """Links are hashed by what they point to; links out of the tree, loops, FIFOs and
    sockets are refused with the file's path (exit 2), never hashed as text or hung on."""
    import os
    import socket

    from builder.sources.fetch import fetch_source
    from builder.spec.envspec import load_spec
    from builder.util.hashing import default_source_exclude, tree_digest

    checkout, spec = _path_spec(tmp_path)
    (checkout / "src" / "b.py").write_text("y = 1\n")
    (checkout / "cfg.py").symlink_to("src/b.py")
    (checkout / "lib").symlink_to("src")
    first = _pin(spec)
    assert len(first) == 64, first
    (checkout / "src" / "b.py").write_text("y = 2\n")  # what the link points to changed
    second = _pin(spec)
    assert second != first
    # a copy with the links dereferenced (the sources cache) has the same digest
    loaded = load_spec(spec)
    from builder.sources.fetch import pin_source

    pinned = pin_source("mine", loaded.spec.sources["mine"], loaded)
    dest = fetch_source(pinned, tmp_path / "cache", spec_dir=spec.parent)
    assert not (dest / "cfg.py").is_symlink() and (dest / "cfg.py").read_text() == "y = 2\n"
    assert tree_digest(dest, lambda r: r.startswith(".envbuild-source")
                       or default_source_exclude(r)) == second
    outside = tmp_path / "outside.py"
    outside.write_text("z = 1\n")
    refusals = {}
    bad = {
        "link out of the tree": lambda: (checkout / "ext.py").symlink_to(outside),
        "absolute link out": lambda: (checkout / "etc").symlink_to("/etc"),
        "dangling link": lambda: (checkout / "gone.py").symlink_to("nothere.py"),
        "link loop": lambda: (checkout / "src" / "up").symlink_to(".."),
        "FIFO": lambda: os.mkfifo(checkout / "src" / "pipe"),
        "socket": lambda: socket.socket(socket.AF_UNIX).bind(str(checkout / "sock")),
    }
    for name, make in bad.items():
        before = set(os.listdir(checkout)) | {f"src/{n}" for n in os.listdir(checkout / "src")}
        make()
        start = time.monotonic()
        said = _pin(spec)
        refusals[name] = time.monotonic() - start
        assert said.startswith("exit 2: ") and str(checkout) in said, (name, said)
        for entry in (set(os.listdir(checkout)) | {f"src/{n}" for n in
                                                   os.listdir(checkout / "src")}) - before:
            (checkout / entry).unlink()
        assert _pin(spec) == second, name
    record("path source links and special files", link_content_change_detected="1/1",
           copy_digest_equal="1/1", refused_exit_2=f"{len(refusals)}/{len(bad)}",
           slowest_s=round(max(refusals.values()), 2))
