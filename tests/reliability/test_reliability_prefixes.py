"""pip console scripts start in any prefix path: spaces, non-ASCII, and paths too long for
a ``#!`` line (uv writes a ``/bin/sh`` trampoline there).  Each prefix is installed for
real (the demo's local channel plus a wheel with a console script), the script is run
after the switch, after a second generation, and after a rollback.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel, write_channel_lockfile
from builder.errors import CheckFailed
from builder.install.scripts import check_scripts, point_at_prefix
from tests.helpers.reliability import record, run_to_end, write_wheel

pytestmark = pytest.mark.reliability


def _cli_lockfile(local: LocalChannel, tmp_path: Path) -> Path:
    wheel = write_wheel(tmp_path / "wheels", "hello-cli", "1.0", {
        "hello_cli/__init__.py": "def main():\n    print('hello cli')\n",
        "hello_cli-1.0.dist-info/entry_points.txt":
            "[console_scripts]\nhello-cli = hello_cli:main\n"})
    return write_channel_lockfile(local, tmp_path / "cli.conda-lock.yml", wheels=(wheel,))


def _says(prefix: Path) -> tuple[int, str]:
    out = subprocess.run([str(prefix / "bin" / "hello-cli")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=60, check=False)
    return out.returncode, out.stdout.strip() + out.stderr.strip()


def test_console_scripts_start_in_any_prefix(local: LocalChannel,
                                             tmp_path: Path) -> None:
    lockfile = _cli_lockfile(local, tmp_path)
    prefixes = {
        "space + non-ASCII": tmp_path / "my envs" / "ünï env",
        "91+ chars": tmp_path / ("d" * max(1, 92 - len(str(tmp_path)))) / "env",
        "200 chars, spaces": tmp_path / ("a b " * 40) / "e n v",
    }
    runs = 0
    for label, prefix in prefixes.items():
        assert len(str(prefix)) > 90 or " " in str(prefix), label
        for step in (["install", str(lockfile), "--prefix", str(prefix)],
                     ["install", str(lockfile), "--prefix", str(prefix), "--force"],
                     ["rollback", "--prefix", str(prefix)]):
            rc, _, err, _ = run_to_end(step, tmp_path / "logs")
            assert rc == 0, f"{label}: {step[0]}: {err}"
            assert _says(prefix) == (0, "hello cli"), (label, step[0], _says(prefix))
            runs += 1
    record("console scripts in odd prefixes", prefixes=len(prefixes),
           script_runs_ok=f"{runs}/{runs}", longest_prefix=max(len(str(p)) for p in
                                                                prefixes.values()))


def test_a_script_that_cannot_start_is_refused(tmp_path: Path) -> None:
    """The check can fail: a trampoline left naming the temporary generation, a #! line over
    the kernel's limit and a missing interpreter are each named."""
    final = tmp_path / "p q"
    gen = tmp_path / "p q.envbuild-gens" / "1.partial"
    (gen / "bin").mkdir(parents=True)
    python = gen / "bin" / "python3"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    scripts = {
        "stale": f"#!/bin/sh\n'''exec' '{gen}/bin/python3' \"$0\" \"$@\"\n' '''\n",
        "long": "#!/" + "x" * 300 + "/python3\n",
        "gone": f"#!/bin/sh\n'''exec' '{final}/bin/python9' \"$0\" \"$@\"\n' '''\n",
        "fine": f"#!/bin/sh\n'''exec' '{gen}/bin/python3' \"$0\" \"$@\"\n' '''\n",
    }
    for name, text in scripts.items():
        (gen / "bin" / name).write_text(text)
    assert point_at_prefix(gen, final, {"fine"}) == {"fine"}
    with pytest.raises(CheckFailed) as info:
        check_scripts(gen, final, set(scripts))
    text = info.value.message
    assert all(f"bin/{n}:" in text for n in ("stale", "long", "gone"))
    assert "bin/fine:" not in text
    check_scripts(gen, final, {"fine"})
