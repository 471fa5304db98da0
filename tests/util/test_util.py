"""builder.util: the subprocess wrapper, atomic files, locks and content hashes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder.errors import CommandError, ExecutableNotFound
from builder.util import cmd, fs, hashing


def test_run_captures_output() -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    done = cmd.run([sys.executable, "-c", code])
    assert done.returncode == 0
    assert done.stdout.strip() == "out"
    assert done.stderr.strip() == "err"


def test_run_failure_carries_command_code_and_stderr_tail(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(100): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    log = tmp_path / "log.txt"
    with pytest.raises(CommandError) as info:
        cmd.run([sys.executable, "-c", script], log_path=log, hint="do X")
    err = info.value
    assert err.returncode == 3
    assert "line 99" in err.stderr_tail and "line 0\n" not in err.stderr_tail
    assert err.hint == "do X"
    assert str(log) in err.message
    assert "line 0" in log.read_text()  # the full log is kept


def test_run_names_path_when_executable_missing() -> None:
    with pytest.raises(ExecutableNotFound) as info:
        cmd.run(["definitely-not-a-real-tool-xyz"], env={"PATH": "/nonexistent-dir"})
    assert "/nonexistent-dir" in info.value.message


def test_run_timeout_is_a_command_error() -> None:
    with pytest.raises(CommandError) as info:
        cmd.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)
    assert "timed out" in info.value.message


def test_quote_round_trips_through_a_shell() -> None:
    args = ["echo", "a b", "it's", "$HOME"]
    out = subprocess.run(["sh", "-c", cmd.quote(args)], capture_output=True, text=True)
    assert out.stdout.strip() == "a b it's $HOME"


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    fs.atomic_write_text(target, "one")
    fs.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]  # no temp files left


def test_atomic_write_failure_leaves_old_content(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    fs.atomic_write_text(target, "old")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        fs.atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_file_lock_serialises_two_processes(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    marker = tmp_path / "order.txt"
    child = (
        "import sys, time\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from pathlib import Path\n"
        "from builder.util.fs import file_lock\n"
        "with file_lock(Path(sys.argv[1])):\n"
        "    with open(sys.argv[2], 'a') as fh: fh.write('child\\n')\n"
    )
    repo = str(Path(__file__).resolve().parents[2])
    with fs.file_lock(lock):
        proc = subprocess.Popen(
            [sys.executable, "-c", child, str(lock), str(marker), repo],
            stderr=subprocess.PIPE, text=True,
        )
        time.sleep(1.0)
        with open(marker, "a") as fh:
            fh.write("parent\n")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert marker.read_text().splitlines() == ["parent", "child"]
    assert "waiting for the lock" in stderr


def test_cachedir_tag(tmp_path: Path) -> None:
    fs.ensure_cachedir_tag(tmp_path / "store")
    assert (tmp_path / "store" / "CACHEDIR.TAG").read_text().startswith(
        "Signature: 8a477f597d28d172789f06886806bc55"
    )


def test_payload_digest_is_order_independent_and_sensitive() -> None:
    a = hashing.payload_digest({"schema": 1, "x": [1, 2], "y": "z"})
    b = hashing.payload_digest({"y": "z", "x": [1, 2], "schema": 1})
    c = hashing.payload_digest({"schema": 1, "x": [2, 1], "y": "z"})
    assert a == b != c
    assert len(a) == 64


def test_tree_digest_tracks_content_mode_and_names(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("print(1)\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    base = hashing.tree_digest(root)
    os.chmod(root / "run.sh", 0o755)
    moded = hashing.tree_digest(root)
    assert moded != base
    (root / "pkg" / "a.py").write_text("print(2)\n")
    assert hashing.tree_digest(root) != moded
    (root / "pkg" / "a.py").write_text("print(1)\n")
    assert hashing.tree_digest(root) == moded


def test_tree_digest_ignores_stale_build_output(tmp_path: Path) -> None:
    root = tmp_path / "ops"
    root.mkdir()
    (root / "setup.py").write_text("x = 1\n")
    clean = hashing.tree_digest(root, hashing.default_source_exclude)
    (root / "build" / "temp").mkdir(parents=True)
    (root / "build" / "temp" / "x.o").write_bytes(b"\0")
    (root / "old.so").write_bytes(b"\0")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    assert hashing.tree_digest(root, hashing.default_source_exclude) == clean


def test_file_lock_in_threads_is_exclusive(tmp_path: Path) -> None:
    # flock locks are per open file description, so two threads also exclude each other.
    lock = tmp_path / "t.lock"
    inside: list[int] = []
    overlap: list[bool] = []

    def worker() -> None:
        with fs.file_lock(lock, quiet=True):
            inside.append(1)
            overlap.append(len(inside) > 1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == [False] * 4


def test_remove_tree_only_inside_its_roots(tmp_path: Path) -> None:
    from builder.util.fs import UnsafeRemoval, remove_tree

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "ro").mkdir(parents=True)
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    (root / "a" / "ro" / "f").write_text("y")
    (root / "a" / "ro").chmod(0o555)
    (root / "link").symlink_to(outside)
    for victim in (outside, root / ".." / "outside", root, root / "link" / "keep.txt"):
        with pytest.raises(UnsafeRemoval):
            remove_tree(victim, inside=root)
    remove_tree(root / "link", inside=root)  # the link goes, never what it points to
    assert (outside / "keep.txt").exists() and not (root / "link").is_symlink()
    remove_tree(root / "a", inside=root)  # read-only dirs inside are removed too
    assert not (root / "a").exists() and root.is_dir()
